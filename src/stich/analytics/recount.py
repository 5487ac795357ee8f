"""``stich db verify``: recount every maintained count from its events and repair drift.

Counts are data, not queries (DESIGN.md): stars, favorites, views and forks live on the
app row, views / unique viewers / stars per day in ``app_daily_stats``, referrer and
device views per day in ``app_daily_breakdowns``, and the feed's totals in
``gallery_feed_counts``. Each :class:`Check` compares one of them with a recount of the
rows it counts, in SQL (:mod:`stich.analytics.rebuild_sql`), and yields every difference
as a :class:`Drift`; ``repair`` recounts again *inside the repairing transaction* and
rewrites only the rows that differ, with one statement per table, so a repair never
writes a value that was already stale when it was read.

The definitions (the same ones the services maintain):

- ``apps.star_count`` / ``favorite_count``: rows in ``stars`` / ``favorites`` for the app;
  ``fork_count``: its live (not deleted) forks; ``view_count``: the sum of its daily
  rollups' views (the rollups keep the history of purged raw view events).
- ``app_daily_viewers``: the distinct (UTC day, app, viewer key) of the view rows.
- ``app_daily_stats``: per app and UTC day, ``views`` = view rows, ``unique_viewers`` =
  its ``app_daily_viewers`` rows, ``stars`` = standing stars given that day.
- ``app_daily_breakdowns``: view rows per app, day and referrer origin / device type.
- ``gallery_feed_counts``: apps matching the feed predicate, overall and per framework.
- SQLite's full-text index agrees with ``apps`` (FTS5 ``integrity-check``).

View-based values follow the :class:`~stich.analytics.rebuild.ViewHistory`: exact on the
days whose raw views are all retained, never lowered on earlier days (their raw views
may have been purged; the rollups are the history).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, cast

from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from stich.analytics.history import ViewHistory, view_days
from stich.analytics.rebuild_sql import (
    COUNTERS,
    BreakdownSql,
    CounterSql,
    DailyStatsSql,
    DailyViewersSql,
    Dialect,
)
from stich.analytics.sql import insert_for
from stich.apps.models import FEED_PREDICATE, App
from stich.gallery.models import FeedCount
from stich.gallery.search import FTS_TABLE

Key = tuple[Any, ...]


@dataclass(frozen=True)
class Drift:
    check: str
    key: Key
    field: str
    stored: int
    actual: int  # what the repair writes
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

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        """Every drift, streamed (in key order when ``ordered``)."""
        ...

    def find(self, session: Session) -> list[Drift]:
        """Every drift, in key order."""
        ...

    def repair(self, session: Session) -> int:
        """Recount and rewrite what differs, in the caller's transaction; rows rewritten."""
        ...

    def parts(self, session: Session) -> Sequence[Check]:
        """This check cut in parts to repair one transaction each (the rollups by days, so
        that other writers never wait long); together they are the whole check."""
        ...


def _dialect(session: Session) -> Dialect:
    return Dialect(session.get_bind().dialect.name)


def _lock(session: Session, table: str) -> None:
    statement = _dialect(session).lock(table)
    if statement is not None:
        session.execute(text(statement))


def _written(result: Any) -> int:
    return max(int(result.rowcount), 0)


class _FindAll:
    """``find`` as the ordered list of ``drifts``; one part."""

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        raise NotImplementedError

    def find(self, session: Session) -> list[Drift]:
        return list(self.drifts(session, ordered=True))

    def parts(self, session: Session) -> Sequence[Check]:
        return [cast("Check", self)]  # every subclass is a Check


# Days of rollups repaired per transaction: a few seconds of work at 2 M views in 120 days
# (shorter parts rescan the breakdowns, which have no index by day, more often).
REPAIR_DAYS = 30


class _ByDays(_FindAll):
    """Parts of ``REPAIR_DAYS`` days each, cut where the views and rollups are."""

    history: ViewHistory

    def parts(self, session: Session) -> Sequence[Check]:
        extent = view_days(session)
        if extent is None:
            return [cast("Check", self)]
        chunks = self.history.chunks(*extent, REPAIR_DAYS)
        return [cast("Check", replace(self, history=chunk)) for chunk in chunks]  # type: ignore[type-var]


# -- counters on the app row ----------------------------------------------------------


@dataclass(frozen=True)
class AppCounterCheck(_FindAll):
    """One counter column of ``apps`` against a count of rows per app."""

    name: str
    sql: CounterSql
    needs_write: bool = False

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        for app_id, stored, actual in session.execute(text(self.sql.find(ordered=ordered))):
            yield Drift(self.name, (app_id,), self.sql.column, int(stored), int(actual))

    def repair(self, session: Session) -> int:
        _lock(session, "apps")
        return _written(session.execute(text(self.sql.repair())))


# -- daily rollups ----------------------------------------------------------------------


@dataclass(frozen=True)
class DailyViewersCheck(_ByDays):
    """``app_daily_viewers`` against the distinct (day, app, viewer) of the raw views."""

    history: ViewHistory = field(default_factory=ViewHistory.everything_retained)
    name: str = "daily viewers"
    needs_write: bool = False

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        sql = DailyViewersSql(_dialect(session)).find(ordered=ordered)
        for app_id, day, viewer_key, stored, actual in session.execute(self.history.bind(sql)):
            note = "missing (a raw view has it)" if actual else "extra (no raw view has it)"
            # The start of the keyed hash says which row; the rest adds nothing.
            key = (app_id, day, f"viewer {viewer_key[:8]}")
            yield Drift(self.name, key, "row", int(stored), int(actual), note=note)

    def repair(self, session: Session) -> int:
        _lock(session, "app_daily_viewers")
        create, compare, add, delete, drop = DailyViewersSql(_dialect(session)).repair()
        session.execute(text(create))
        session.execute(self.history.bind(compare))
        rows = sum(_written(session.execute(text(sql))) for sql in (add, delete))
        session.execute(text(drop))
        return rows


@dataclass(frozen=True)
class DailyStatsCheck(_ByDays):
    """``app_daily_stats`` against the views and stars."""

    history: ViewHistory = field(default_factory=ViewHistory.everything_retained)
    name: str = "daily rollups"
    needs_write: bool = False

    def _sql(self, session: Session) -> DailyStatsSql:
        return DailyStatsSql(_dialect(session))

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        sql = self._sql(session).find(ordered=ordered)
        for row in session.execute(self.history.bind(sql)):
            app_id, day = row[0], row[1]
            s_views, a_views, s_unique, a_unique, s_stars, a_stars, w_views, w_unique = (
                int(v) for v in row[2:]
            )
            del a_views, a_unique  # the wanted values say it (history may keep more)
            for name, stored, wanted in (
                ("views", s_views, w_views),
                ("unique_viewers", s_unique, w_unique),
                ("stars", s_stars, a_stars),
            ):
                if stored != wanted:
                    yield Drift(self.name, (app_id, day), name, stored, wanted)

    def repair(self, session: Session) -> int:
        _lock(session, "app_daily_stats")
        return _written(session.execute(self.history.bind(self._sql(session).repair())))


@dataclass(frozen=True)
class BreakdownCheck(_ByDays):
    """``app_daily_breakdowns`` against the views."""

    history: ViewHistory = field(default_factory=ViewHistory.everything_retained)
    name: str = "referrer and device rollups"
    needs_write: bool = False

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        sql = BreakdownSql(_dialect(session)).find(ordered=ordered)
        for app_id, day, dimension, value, stored, _actual, wanted in session.execute(
            self.history.bind(sql)
        ):
            if int(stored) != int(wanted):
                key = (app_id, day, dimension, value)
                yield Drift(self.name, key, "views", int(stored), int(wanted))

    def repair(self, session: Session) -> int:
        _lock(session, "app_daily_breakdowns")
        statement = self.history.bind(BreakdownSql(_dialect(session)).repair())
        return _written(session.execute(statement))


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


def _feed_drifts(session: Session, name: str) -> list[Drift]:
    recount = _feed_recount(session)
    stored = {
        row[0]: row[1] for row in session.execute(select(FeedCount.scope, FeedCount.app_count))
    }
    return [
        Drift(name, (scope,), "app_count", stored.get(scope, 0), recount.get(scope, 0))
        for scope in sorted(recount.keys() | stored.keys())
        if stored.get(scope, 0) != recount.get(scope, 0)
    ]


@dataclass(frozen=True)
class FeedCountCheck(_FindAll):
    """A few dozen rows at most (one per framework): compared in Python."""

    name: str = "feed totals"
    needs_write: bool = False

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        yield from _feed_drifts(session, self.name)

    def repair(self, session: Session) -> int:
        _lock(session, FeedCount.__tablename__)
        drifts = _feed_drifts(session, self.name)
        if not drifts:
            return 0
        rows = [{"scope": d.key[0], "app_count": d.actual} for d in drifts]
        stmt = insert_for(session, FeedCount).values(rows)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["scope"], set_={"app_count": stmt.excluded.app_count}
            )
        )
        return len(rows)


@dataclass(frozen=True)
class SearchIndexCheck(_FindAll):
    """SQLite only: FTS5's own check of ``apps_fts`` against ``apps``; repair rebuilds it.

    (PostgreSQL's GIN expression index is maintained by PostgreSQL itself.)
    """

    name: str = "search index"
    needs_write: bool = True

    def drifts(self, session: Session, *, ordered: bool = False) -> Iterator[Drift]:
        if session.get_bind().dialect.name != "sqlite":
            return
        try:
            with session.begin_nested():
                session.execute(
                    text("INSERT INTO apps_fts (apps_fts, rank) VALUES ('integrity-check', 1)")
                )
        except DBAPIError as exc:
            if not isinstance(exc.orig, sqlite3.DatabaseError):
                raise
            note = "does not match the apps table; repair rebuilds it"
            yield Drift(self.name, (FTS_TABLE,), "index", 0, 0, note=note)

    def repair(self, session: Session) -> int:
        if session.get_bind().dialect.name != "sqlite" or not self.find(session):
            return 0
        session.execute(text("INSERT INTO apps_fts (apps_fts) VALUES ('rebuild')"))
        return 1


def verification_checks(history: ViewHistory | None = None) -> list[Check]:
    """Every check, in dependency order (events -> rollups -> counters).

    ``history``: which days' raw views are all retained
    (:func:`stich.analytics.history.view_history`);
    by default every day's, as in a database whose views are never purged.
    """
    history = history or ViewHistory.everything_retained()

    def counter(name: str) -> AppCounterCheck:
        return AppCounterCheck(name, COUNTERS[name])

    return [
        counter("stars"),
        counter("favorites"),
        counter("forks"),
        DailyViewersCheck(history),
        DailyStatsCheck(history),
        BreakdownCheck(history),
        counter("views"),
        FeedCountCheck(),
        SearchIndexCheck(),
    ]


# Everything recounted from every event (tests, and databases whose views are never purged).
CHECKS: list[Check] = verification_checks()
