"""``stich db verify``: recount every maintained count from its events and repair drift.

Counts are data, not queries (DESIGN.md): stars, favorites, views and forks live on the
app row, views / unique viewers / stars per day in ``app_daily_stats``, referrer and
device views per day in ``app_daily_breakdowns``, and the feed's totals in
``gallery_feed_counts``. Each :class:`Check` recounts one of them from the rows it
counts and lists every difference as a :class:`Drift`; ``repair`` recounts the drifted
keys again *inside the repairing transaction* and writes the recount, so a repair never
writes a value that was already stale when it was read.

The definitions (the same ones the services maintain):

- ``apps.star_count`` / ``favorite_count``: rows in ``stars`` / ``favorites`` for the app;
  ``fork_count``: its live (not deleted) forks; ``view_count``: the sum of its daily
  rollups' views (raw view events are purged after their retention period, the rollups
  keep the history).
- ``app_daily_stats``: per app and UTC day, ``views`` = view rows, ``unique_viewers`` =
  distinct viewer keys (for the days whose raw events are still all retained), ``stars``
  = standing stars given that day (every day).
- ``app_daily_breakdowns``: view rows per app, day and referrer origin / device type
  (retained days only).
- ``gallery_feed_counts``: apps matching the feed predicate, overall and per framework.
- SQLite's full-text index agrees with ``apps`` (FTS5 ``integrity-check``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Select, bindparam, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstrumentedAttribute, Session

from stich.analytics.models import AppDailyBreakdown, AppDailyStats, AppView, BreakdownDimension
from stich.analytics.repository import chunks
from stich.analytics.sql import insert_for, table_of, utc_day
from stich.apps.models import FEED_PREDICATE, App
from stich.db.base import utcnow
from stich.gallery.models import Favorite, FeedCount, Star
from stich.gallery.search import FTS_TABLE

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Drift:
    check: str
    key: Key
    field: str
    stored: int
    actual: int
    note: str | None = None  # said instead of "stored vs recount" when they are not numbers

    def describe(self) -> str:
        where = " ".join(str(part) for part in self.key)
        if self.note is not None:
            return f"{self.check}: {where}: {self.note}"
        return f"{self.check}: {where}: {self.field} is {self.stored}, recount {self.actual}"


class Check(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def needs_write(self) -> bool:
        """Whether finding drift needs a write transaction (SQLite's FTS5 check is an
        INSERT)."""
        ...

    def find(self, session: Session) -> list[Drift]: ...

    def repair(self, session: Session, drifts: Sequence[Drift]) -> None: ...


# -- counters on the app row ----------------------------------------------------------


Recount = Callable[[Sequence[str] | None], "Select[str, int]"]


def _per_app(key: Any, *conditions: ColumnElement[bool]) -> Recount:
    """Rows per app (``key`` is the app id column), for all apps or just ``app_ids``."""

    def recount(app_ids: Sequence[str] | None) -> Select[str, int]:
        stmt = select(key.label("app_id"), func.count().label("n")).where(*conditions)
        if app_ids is not None:
            stmt = stmt.where(key.in_(app_ids))
        return stmt.group_by(key)

    return recount


@dataclass(frozen=True)
class AppCounterCheck:
    """One counter column of ``apps`` against a count of rows per app."""

    name: str
    counter: InstrumentedAttribute[int]
    recount: Recount
    needs_write: bool = False

    def find(self, session: Session) -> list[Drift]:
        counts = self.recount(None).subquery()
        actual = func.coalesce(counts.c.n, 0)
        rows = session.execute(
            select(App.id, self.counter, actual)
            .outerjoin(counts, counts.c.app_id == App.id)
            .where(self.counter != actual)
            .order_by(App.id)
        )
        return [Drift(self.name, (r[0],), self.counter.key, r[1], int(r[2])) for r in rows]

    def repair(self, session: Session, drifts: Sequence[Drift]) -> None:
        app_ids = sorted({drift.key[0] for drift in drifts})
        fresh: dict[str, int] = {
            row[0]: int(row[1]) for row in session.execute(self.recount(app_ids))
        }
        table = table_of(App)
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_app_id"))
            .values({self.counter.key: bindparam("b_count"), "updated_at": table.c.updated_at})
        )
        params = [{"b_app_id": app_id, "b_count": fresh.get(app_id, 0)} for app_id in app_ids]
        session.execute(stmt, params)


# -- daily rollups ----------------------------------------------------------------------

DailyValues = tuple[int, int, int]  # views, unique viewers, stars


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _daily_recount(
    session: Session, app_ids: Sequence[str] | None, views_since: date | None = None
) -> dict[Key, DailyValues]:
    view_day = utc_day(AppView.viewed_at)
    views = select(
        AppView.app_id,
        view_day,
        func.count(),
        func.count(AppView.viewer_key.distinct()),
    ).group_by(AppView.app_id, view_day)
    if views_since is not None:
        views = views.where(AppView.viewed_at >= _start_of(views_since))
    star_day = utc_day(Star.created_at)
    stars = select(Star.app_id, star_day, func.count()).group_by(Star.app_id, star_day)
    if app_ids is not None:
        views = views.where(AppView.app_id.in_(app_ids))
        stars = stars.where(Star.app_id.in_(app_ids))
    recount: dict[Key, list[int]] = {}
    for app_id, day, n, unique in session.execute(views):
        recount[(app_id, day)] = [int(n), int(unique), 0]
    for app_id, day, n in session.execute(stars):
        recount.setdefault((app_id, day), [0, 0, 0])[2] = int(n)
    return {key: (v[0], v[1], v[2]) for key, v in recount.items()}


_DAILY_FIELDS = ("views", "unique_viewers", "stars")


@dataclass(frozen=True)
class DailyStatsCheck:
    """Rollups against the events. ``views_since``: the first day whose raw view events
    are all still retained; older days' views are history the rollups alone keep."""

    name: str = "daily rollups"
    needs_write: bool = False
    views_since: date | None = None

    def _views_known(self, day: date) -> bool:
        return self.views_since is None or day >= self.views_since

    def find(self, session: Session) -> list[Drift]:
        recount = _daily_recount(session, None, self.views_since)
        stored: dict[Key, DailyValues] = {
            (r[0], r[1]): (r[2], r[3], r[4])
            for r in session.execute(
                select(
                    AppDailyStats.app_id,
                    AppDailyStats.day,
                    AppDailyStats.views,
                    AppDailyStats.unique_viewers,
                    AppDailyStats.stars,
                )
            )
        }
        drifts: list[Drift] = []
        for key in sorted(recount.keys() | stored.keys()):
            have, want = stored.get(key, (0, 0, 0)), recount.get(key, (0, 0, 0))
            fields = _DAILY_FIELDS if self._views_known(key[1]) else ("stars",)
            for field, s, a in zip(_DAILY_FIELDS, have, want, strict=True):
                if field in fields and s != a:
                    drifts.append(Drift(self.name, key, field, s, a))
        return drifts

    def repair(self, session: Session, drifts: Sequence[Drift]) -> None:
        keys = sorted({drift.key for drift in drifts})
        fresh = _daily_recount(session, sorted({app_id for app_id, _ in keys}), self.views_since)
        for known in (True, False):
            group = [key for key in keys if self._views_known(key[1]) is known]
            if not group:
                continue
            rows = [
                dict(
                    zip(
                        ("app_id", "day", *_DAILY_FIELDS),
                        (*key, *fresh.get(key, (0, 0, 0))),
                        strict=True,
                    )
                )
                for key in group
            ]
            # Days past view retention: only stars can be recounted; views stay history.
            fields = _DAILY_FIELDS if known else ("stars",)
            stmt = insert_for(session, AppDailyStats).values(rows)
            session.execute(
                stmt.on_conflict_do_update(
                    index_elements=["app_id", "day"],
                    set_={field: getattr(stmt.excluded, field) for field in fields},
                )
            )


def _breakdown_recount(
    session: Session, app_ids: Sequence[str] | None, views_since: date | None = None
) -> dict[Key, int]:
    day = utc_day(AppView.viewed_at)
    referrer = func.coalesce(AppView.referrer_origin, "")
    recount: dict[Key, int] = {}
    dimensions: list[tuple[BreakdownDimension, Any]] = [
        (BreakdownDimension.REFERRER, referrer),
        (BreakdownDimension.DEVICE, AppView.device_type),
    ]
    for dimension, value in dimensions:
        stmt = select(AppView.app_id, day, value, func.count()).group_by(AppView.app_id, day, value)
        if app_ids is not None:
            stmt = stmt.where(AppView.app_id.in_(app_ids))
        if views_since is not None:
            stmt = stmt.where(AppView.viewed_at >= _start_of(views_since))
        for app_id, d, v, n in session.execute(stmt):
            recount[(app_id, d, dimension, str(getattr(v, "value", v)))] = int(n)
    return recount


@dataclass(frozen=True)
class BreakdownCheck:
    name: str = "referrer and device rollups"
    needs_write: bool = False
    views_since: date | None = None  # as for DailyStatsCheck

    def find(self, session: Session) -> list[Drift]:
        recount = _breakdown_recount(session, None, self.views_since)
        t = AppDailyBreakdown
        stored_rows = select(t.app_id, t.day, t.dimension, t.value, t.views)
        if self.views_since is not None:
            stored_rows = stored_rows.where(t.day >= self.views_since)
        stored: dict[Key, int] = {
            (r[0], r[1], r[2], r[3]): r[4] for r in session.execute(stored_rows)
        }
        return [
            Drift(self.name, key, "views", stored.get(key, 0), recount.get(key, 0))
            for key in sorted(recount.keys() | stored.keys(), key=str)
            if stored.get(key, 0) != recount.get(key, 0)
        ]

    def repair(self, session: Session, drifts: Sequence[Drift]) -> None:
        keys = sorted({drift.key for drift in drifts}, key=str)
        fresh = _breakdown_recount(session, sorted({key[0] for key in keys}), self.views_since)
        rows = [
            dict(
                zip(
                    ("app_id", "day", "dimension", "value", "views"),
                    (*k, fresh.get(k, 0)),
                    strict=True,
                )
            )
            for k in keys
        ]
        stmt = insert_for(session, AppDailyBreakdown).values(rows)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["app_id", "day", "dimension", "value"],
                set_={"views": stmt.excluded.views},
            )
        )


# -- the feed's totals and search index ------------------------------------------------


def _feed_recount(session: Session) -> dict[str, int]:
    listed = text(FEED_PREDICATE)
    total = session.execute(select(func.count()).select_from(App).where(listed)).scalar_one()
    counts = {"all": int(total)}
    per_framework = session.execute(
        select(App.framework, func.count())
        .where(listed, App.framework.is_not(None))
        .group_by(App.framework)
    )
    counts.update({f"framework:{fw}": int(n) for fw, n in per_framework})
    return counts


@dataclass(frozen=True)
class FeedCountCheck:
    name: str = "feed totals"
    needs_write: bool = False

    def find(self, session: Session) -> list[Drift]:
        recount = _feed_recount(session)
        stored = {
            row[0]: row[1] for row in session.execute(select(FeedCount.scope, FeedCount.app_count))
        }
        return [
            Drift(self.name, (scope,), "app_count", stored.get(scope, 0), recount.get(scope, 0))
            for scope in sorted(recount.keys() | stored.keys())
            if stored.get(scope, 0) != recount.get(scope, 0)
        ]

    def repair(self, session: Session, drifts: Sequence[Drift]) -> None:
        fresh = _feed_recount(session)
        rows = [
            {"scope": d.key[0], "app_count": fresh.get(d.key[0], 0)}
            for d in sorted(drifts, key=lambda d: d.key)
        ]
        stmt = insert_for(session, FeedCount).values(rows)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["scope"], set_={"app_count": stmt.excluded.app_count}
            )
        )


@dataclass(frozen=True)
class SearchIndexCheck:
    """SQLite only: FTS5's own check of ``apps_fts`` against ``apps``; repair rebuilds it.

    (PostgreSQL's GIN expression index is maintained by PostgreSQL itself.)
    """

    name: str = "search index"
    needs_write: bool = True

    def find(self, session: Session) -> list[Drift]:
        if session.get_bind().dialect.name != "sqlite":
            return []
        try:
            with session.begin_nested():
                session.execute(
                    text("INSERT INTO apps_fts (apps_fts, rank) VALUES ('integrity-check', 1)")
                )
        except DBAPIError as exc:
            if not isinstance(exc.orig, sqlite3.DatabaseError):
                raise
            note = "does not match the apps table; repair rebuilds it"
            return [Drift(self.name, (FTS_TABLE,), "index", 0, 0, note=note)]
        return []

    def repair(self, session: Session, drifts: Sequence[Drift]) -> None:
        session.execute(text("INSERT INTO apps_fts (apps_fts) VALUES ('rebuild')"))


_live_forks = _per_app(App.parent_app_id, App.parent_app_id.is_not(None), App.deleted_at.is_(None))


def _rollup_views(app_ids: Sequence[str] | None) -> Select[str, int]:
    stmt = select(AppDailyStats.app_id.label("app_id"), func.sum(AppDailyStats.views).label("n"))
    if app_ids is not None:
        stmt = stmt.where(AppDailyStats.app_id.in_(app_ids))
    return stmt.group_by(AppDailyStats.app_id)


def verification_checks(
    view_retention_days: int | None = None, *, now: datetime | None = None
) -> list[Check]:
    """Every check, in dependency order (events -> rollups -> counters).

    With a view retention, raw view events older than it may have been purged
    (``stich maintenance run``); only days after the retention boundary, all of whose
    events remain, are recounted from them.
    """
    views_since = None
    if view_retention_days is not None:
        # The product's clock, like the maintenance run that purges by the same rule.
        boundary = (now or utcnow()) - timedelta(days=view_retention_days)
        views_since = boundary.date() + timedelta(days=1)
    return [
        AppCounterCheck("stars", App.star_count, _per_app(Star.app_id)),
        AppCounterCheck("favorites", App.favorite_count, _per_app(Favorite.app_id)),
        AppCounterCheck("forks", App.fork_count, _live_forks),
        DailyStatsCheck(views_since=views_since),
        BreakdownCheck(views_since=views_since),
        AppCounterCheck("views", App.view_count, _rollup_views),
        FeedCountCheck(),
        SearchIndexCheck(),
    ]


# Everything recounted from every event (tests, and databases whose views are never purged).
CHECKS: list[Check] = verification_checks()


def repair_batches(drifts: Sequence[Drift], batch_size: int) -> Iterable[Sequence[Drift]]:
    """Drifts grouped so that one key's fields are always repaired together."""
    by_key: dict[Key, list[Drift]] = {}
    for drift in drifts:
        by_key.setdefault(drift.key, []).append(drift)
    groups = list(by_key.values())
    for batch in chunks(groups, batch_size):
        yield [drift for group in batch for drift in group]
