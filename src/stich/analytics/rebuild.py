"""Rebuild maintained state from the rows it counts, set-based, at load speed.

After an import, or any loss of counters or rollups, :func:`rebuild_maintained_state`
runs every :mod:`~stich.analytics.recount` check's repair in dependency order (counters
of stars, favorites and forks; daily rollups; referrer and device rollups; view counters
from the rollups; feed totals; SQLite's search index). Each is one set-based statement
(``INSERT ... SELECT ... GROUP BY ... ON CONFLICT DO UPDATE``, ``UPDATE ... FROM
(aggregate)``) that rewrites only the rows that differ, so a rebuild of a consistent
database writes nothing.

:func:`roll_up_views` is what the view purge runs first: it raises the rollups of the
days about to be purged to what their raw rows count, so no view is dropped uncounted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date, datetime

import structlog
from sqlalchemy import text
from sqlalchemy.orm import Session

from stich.analytics.history import ViewHistory, view_history
from stich.analytics.rebuild_sql import COUNTERS, BreakdownSql, DailyStatsSql, Dialect
from stich.analytics.recount import AppCounterCheck, Check, verification_checks
from stich.db import Database

log = structlog.get_logger("stich.analytics")


@dataclass(frozen=True)
class RebuiltPart:
    name: str  # the check's name, e.g. "daily rollups"
    rows: int  # rows rewritten (0: it was right)
    seconds: float


@dataclass
class RebuildReport:
    history: ViewHistory
    parts: list[RebuiltPart] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(part.rows for part in self.parts)


RebuildProgress = Callable[[RebuiltPart], None]

# The parts, in the order they run (for a progress bar of known length).
REBUILD_PARTS = tuple(check.name for check in verification_checks())


def rebuild_maintained_state(
    target: Database | Session,
    *,
    view_retention_days: int | None = None,
    now: datetime | None = None,
    progress: RebuildProgress | None = None,
) -> RebuildReport:
    """Recount every maintained count and rewrite what differs; what each part rewrote.

    With a :class:`Database`, each part is its own write transaction (recounted inside
    it; the rollups a few days at a time) and ``view_retention_days`` defaults to the
    database's setting; with a :class:`Session`, everything runs in the caller's
    transaction and the retention must be given. Views older than the retention are
    counted too (rollups are raised to every raw view that exists), and rollups of days
    whose raw views may have been purged are never lowered (see
    :mod:`stich.analytics.history`).
    """
    transaction: Callable[[], AbstractContextManager[Session]]
    if isinstance(target, Session):
        if view_retention_days is None:
            raise TypeError("rebuild_maintained_state(session, ...) needs view_retention_days")
        history = view_history(target, view_retention_days, now=now)

        def transaction() -> AbstractContextManager[Session]:
            return nullcontext(target)
    else:
        database = target
        retention = view_retention_days or database.settings.view_retention_days
        with database.read("fresh") as uow:
            history = view_history(uow.session, retention, now=now)

        @contextmanager
        def transaction() -> Iterator[Session]:
            with database.write() as uow:
                yield uow.session

    report = RebuildReport(history)
    for check in verification_checks(history):
        report.parts.append(_repair(check, transaction))
        if progress is not None:
            progress(report.parts[-1])
    log.info(
        "maintained state rebuilt",
        exact_from=str(history.exact_from),
        **{part.name.replace(" ", "_"): part.rows for part in report.parts},
    )
    return report


def _repair(
    check: Check, transaction: Callable[[], AbstractContextManager[Session]]
) -> RebuiltPart:
    started, rows = time.perf_counter(), 0
    with transaction() as session:
        parts = check.parts(session)
    for part in parts:  # the rollups a few days per transaction: writers never wait long
        with transaction() as session:
            rows += part.repair(session)
    return RebuiltPart(check.name, rows, time.perf_counter() - started)


@dataclass(frozen=True)
class RolledUp:
    views: int  # raw views the rollups did not count yet
    daily_rows: int  # app_daily_stats rows raised
    breakdown_rows: int  # app_daily_breakdowns rows raised


def roll_up_views(session: Session, before: date) -> RolledUp:
    """Make the rollups of every day before ``before`` count every raw view still there
    (never lowering them), and the view counters follow; in the caller's transaction."""
    dialect = Dialect(session.get_bind().dialect.name)
    days = ViewHistory(exact_from=before, before=before)
    daily, breakdowns = DailyStatsSql(dialect), BreakdownSql(dialect)

    def run(sql: str) -> int:
        return max(int(session.execute(days.bind(sql)).rowcount), 0)  # type: ignore[attr-defined]

    for table in ("app_daily_stats", "app_daily_breakdowns"):
        if (lock := dialect.lock(table)) is not None:
            session.execute(text(lock))
    uncounted = session.scalar(days.bind(daily.uncounted_views()))
    rolled = RolledUp(int(uncounted or 0), run(daily.raise_views()), run(breakdowns.raise_views()))
    if rolled.daily_rows:
        AppCounterCheck("views", COUNTERS["views"]).repair(session)
    return rolled
