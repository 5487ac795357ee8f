"""All SQL of view ingestion, rollups, per-app analytics and the owner's dashboard.

Writes are set-based and lock rows in one order (apps by id, then rollups by app and
day), so concurrent batches never deadlock each other on PostgreSQL. Reads of analytics
touch only the rollups, never ``app_views``: an app's analytics cost the same whatever
the size of the events table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from stich.analytics.models import AppDailyBreakdown, AppDailyStats, BreakdownDimension
from stich.analytics.sql import utc_day
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
    referrer_origin: str | None
    device_type: DeviceType
    viewed_at: datetime


WindowKey = tuple[str, str, int]  # (app_id, viewer_key, window_start)


@dataclass(frozen=True)
class DailyDelta:
    app_id: str
    day: date
    views: int
    unique_viewers: int


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
