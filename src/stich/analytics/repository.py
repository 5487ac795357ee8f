"""All SQL of view ingestion, rollups, per-app analytics and the owner's dashboard.

Writes are set-based and lock rows in one order (apps by id, then rollups by app and
day), so concurrent batches never deadlock each other on PostgreSQL. Reads of analytics
touch only the rollups, never ``app_views``: an app's analytics cost the same whatever
the size of the events table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import bindparam, func, select, union, update
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyBreakdown, AppDailyStats, AppView, BreakdownDimension
from stich.analytics.sql import insert_for, table_of, utc_day
from stich.apps.models import App
from stich.apps.visibility import publicly_visible, visible_to
from stich.audit.models import AuditLog
from stich.auth.models import DeviceType
from stich.auth.principal import Principal
from stich.gallery.models import Favorite, Star

# Rows per multi-row statement: well under SQLite's bound-variable limit.
CHUNK = 500

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class NewView:
    app_id: str
    viewer_key: str
    window_start: int
    user_id: str | None
    referrer_origin: str | None
    device_type: DeviceType
    viewed_at: datetime


WindowKey = tuple[str, str, int]  # (app_id, viewer_key, window_start)


@dataclass(frozen=True)
class DailyDelta:
    app_id: str
    day: date
    count: int


@dataclass(frozen=True)
class BreakdownDelta:
    app_id: str
    day: date
    dimension: BreakdownDimension
    value: str
    views: int


@dataclass(frozen=True)
class DayRow:
    day: date
    views: int
    unique_viewers: int
    stars: int


@dataclass(frozen=True)
class OwnerTotals:
    apps: int
    public_apps: int
    stars_received: int
    views_received: int


class AnalyticsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    # -- which apps ----------------------------------------------------------------------

    def visible_app(self, app_id: str, principal: Principal | None) -> App | None:
        return self.session.execute(
            select(App).where(App.id == app_id, visible_to(principal))
        ).scalar_one_or_none()

    def visible_view_count(self, app_id: str, principal: Principal | None) -> int | None:
        """The view count of an app the principal may see; None if it may not."""
        return self.session.execute(
            select(App.view_count).where(App.id == app_id, visible_to(principal))
        ).scalar_one_or_none()

    def listed_ids(self, app_ids: Iterable[str]) -> set[str]:
        """Those of ``app_ids`` that are in the public feed (the only apps whose views count)."""
        listed: set[str] = set()
        for batch in chunks(sorted(set(app_ids))):
            listed.update(
                self.session.execute(
                    select(App.id).where(App.id.in_(batch), publicly_visible())
                ).scalars()
            )
        return listed

    # -- ingestion -----------------------------------------------------------------------

    def insert_views(self, views: Sequence[NewView]) -> set[WindowKey]:
        """Insert view events; the keys of those that were new in their window."""
        inserted: set[WindowKey] = set()
        for batch in chunks(views):
            stmt = (
                insert_for(self.session, AppView)
                .values([view.__dict__ for view in batch])
                .on_conflict_do_nothing(index_elements=["app_id", "viewer_key", "window_start"])
                .returning(AppView.app_id, AppView.viewer_key, AppView.window_start)
            )
            inserted.update((r[0], r[1], r[2]) for r in self.session.execute(stmt))
        return inserted

    def windows_of(
        self, app_ids: set[str], viewer_keys: set[str], start: int, end: int
    ) -> set[WindowKey]:
        """Windows in ``[start, end)`` in which these viewers viewed these apps (a superset
        of the pairs asked for; callers pick theirs)."""
        found: set[WindowKey] = set()
        apps = sorted(app_ids)
        for key_batch in chunks(sorted(viewer_keys)):
            for app_batch in chunks(apps):
                rows = self.session.execute(
                    select(AppView.app_id, AppView.viewer_key, AppView.window_start).where(
                        AppView.app_id.in_(app_batch),
                        AppView.viewer_key.in_(key_batch),
                        AppView.window_start >= start,
                        AppView.window_start < end,
                    )
                )
                found.update((r[0], r[1], r[2]) for r in rows)
        return found

    def add_app_views(self, counts: dict[str, int]) -> None:
        """``view_count = view_count + n`` per app, in app id order (one lock order)."""
        if not counts:
            return
        table = table_of(App)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_app_id"))
            # updated_at as it was: a view is not an edit of the app.
            .values(
                view_count=table.c.view_count + bindparam("b_views"),
                updated_at=table.c.updated_at,
            )
        )
        params = [{"b_app_id": app_id, "b_views": n} for app_id, n in sorted(counts.items())]
        self.session.execute(stmt, params)

    def add_daily_views(self, deltas: Sequence[DailyDelta]) -> None:
        """``views += n`` on each (app, day) rollup row, creating it if needed. The upsert
        locks the rows (in app and day order) until the transaction ends."""
        ordered = sorted(deltas, key=lambda d: (d.app_id, d.day))
        for batch in chunks(ordered):
            stmt = insert_for(self.session, AppDailyStats).values(
                [
                    {
                        "app_id": d.app_id,
                        "day": d.day,
                        "views": d.count,
                        "unique_viewers": 0,
                        "stars": 0,
                    }
                    for d in batch
                ]
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["app_id", "day"],
                set_={"views": AppDailyStats.views + stmt.excluded.views},
            )
            self.session.execute(stmt)

    def add_unique_viewers(self, deltas: Sequence[DailyDelta]) -> None:
        """``unique_viewers += n`` on rollup rows :meth:`add_daily_views` has written."""
        if not deltas:
            return
        table = table_of(AppDailyStats)
        stmt = (
            update(table)
            .where(table.c.app_id == bindparam("b_app_id"), table.c.day == bindparam("b_day"))
            .values(unique_viewers=table.c.unique_viewers + bindparam("b_unique"))
        )
        params = [
            {"b_app_id": d.app_id, "b_day": d.day, "b_unique": d.count}
            for d in sorted(deltas, key=lambda d: (d.app_id, d.day))
        ]
        self.session.execute(stmt, params)

    def add_breakdowns(self, deltas: Sequence[BreakdownDelta]) -> None:
        ordered = sorted(deltas, key=lambda d: (d.app_id, d.day, d.dimension, d.value))
        for batch in chunks(ordered):
            stmt = insert_for(self.session, AppDailyBreakdown).values([d.__dict__ for d in batch])
            stmt = stmt.on_conflict_do_update(
                index_elements=["app_id", "day", "dimension", "value"],
                set_={"views": AppDailyBreakdown.views + stmt.excluded.views},
            )
            self.session.execute(stmt)

    # -- per-app analytics ---------------------------------------------------------------

    def daily_series(self, app_id: str, start: date, end: date) -> list[DayRow]:
        rows = self.session.execute(
            select(
                AppDailyStats.day,
                AppDailyStats.views,
                AppDailyStats.unique_viewers,
                AppDailyStats.stars,
            )
            .where(
                AppDailyStats.app_id == app_id,
                AppDailyStats.day >= start,
                AppDailyStats.day <= end,
            )
            .order_by(AppDailyStats.day)
        )
        return [DayRow(r.day, r.views, r.unique_viewers, r.stars) for r in rows]

    def breakdown(
        self,
        app_id: str,
        start: date,
        end: date,
        dimension: BreakdownDimension,
        limit: int,
    ) -> list[tuple[str, int]]:
        """``(value, views)`` over the days, most views first."""
        views = func.sum(AppDailyBreakdown.views)
        rows = self.session.execute(
            select(AppDailyBreakdown.value, views.label("views"))
            .where(
                AppDailyBreakdown.app_id == app_id,
                AppDailyBreakdown.day >= start,
                AppDailyBreakdown.day <= end,
                AppDailyBreakdown.dimension == dimension,
            )
            .group_by(AppDailyBreakdown.value)
            .having(views > 0)
            .order_by(views.desc(), AppDailyBreakdown.value)
            .limit(limit)
        )
        return [(r.value, int(r.views)) for r in rows]

    # -- the owner's dashboard -----------------------------------------------------------

    def owner_totals(self, user_id: str) -> OwnerTotals:
        public = func.count().filter(publicly_visible())
        row = self.session.execute(
            select(
                func.count(),
                public,
                func.coalesce(func.sum(App.star_count), 0),
                func.coalesce(func.sum(App.view_count), 0),
            ).where(App.user_id == user_id, App.deleted_at.is_(None))
        ).one()
        return OwnerTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def activity_days(self, user_id: str, since: datetime) -> set[date]:
        """UTC days since ``since`` on which the user created an app, starred or favorited
        one, or did anything the audit log records (sign-ins, edits, ...)."""
        sources: list[Any] = [
            select(utc_day(App.created_at).label("day")).where(
                App.user_id == user_id, App.created_at >= since
            ),
            select(utc_day(Star.created_at)).where(
                Star.user_id == user_id, Star.created_at >= since
            ),
            select(utc_day(Favorite.created_at)).where(
                Favorite.user_id == user_id, Favorite.created_at >= since
            ),
            select(utc_day(AuditLog.created_at)).where(
                AuditLog.actor_id == user_id, AuditLog.created_at >= since
            ),
        ]
        days = union(*sources).subquery()
        rows = self.session.execute(select(days.c.day).where(days.c.day.is_not(None)))
        return {_as_date(r[0]) for r in rows}


def _as_date(value: Any) -> date:
    # A UNION's column loses the Date type on SQLite, where days are ISO text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))
