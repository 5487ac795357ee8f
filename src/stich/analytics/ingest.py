"""All SQL of set-based view ingestion: a batch of N views costs five statements, whatever N.

Each statement takes its rows as *one* parameter: a JSON array read with ``json_each`` on
SQLite, and column arrays read with ``unnest`` on PostgreSQL. So the statement text is the
same for every batch (prepared once, no per-row placeholders, no SQLAlchemy compilation on
the hot path) and the database, not Python, loops over the rows.

1. insert the views of apps in the public feed, skipping any whose (window, app, viewer)
   is already there (the unique key is the de-duplication: a batch delivered twice counts
   once), returning the keys that were new;
2. insert the new views' (day, app, viewer) into ``app_daily_viewers``, skipping those
   already there, returning the ones that were new: the day's new unique viewers;
3. ``apps.view_count += n``;
4. ``app_daily_stats.views += n, unique_viewers += u`` (an upsert);
5. ``app_daily_breakdowns.views += n`` per referrer origin and device type (an upsert).

Both keys lead with time (window, day), so a batch's rows land together at the recent
end of each index rather than on a random page each. Rows are fed in key order, and
counters in (app id, day) order, the order every writer of these tables locks them in, so
concurrent batches on PostgreSQL queue behind each other instead of deadlocking.
"""

# Statement text is assembled from this module's own constants; values are always bound.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from stich.analytics.models import AppView
from stich.analytics.repository import BreakdownDelta, DailyDelta, NewView, WindowKey
from stich.apps.visibility import publicly_visible


def _rows_source(dialect: str, columns: Sequence[tuple[str, str]]) -> str:
    """A FROM item named ``r`` with these (name, PostgreSQL type) columns, read from one
    bound parameter (see :func:`_rows_param`)."""
    if dialect == "sqlite":
        picks = ", ".join(
            f"json_extract(value, '$[{i}]') AS {name}" for i, (name, _) in enumerate(columns)
        )
        return f"(SELECT {picks} FROM json_each(?)) AS r"
    arrays = ", ".join(f"%s::{pg_type}[]" for _, pg_type in columns)
    names = ", ".join(name for name, _ in columns)
    return f"unnest({arrays}) AS r({names})"


def _rows_param(dialect: str, rows: Sequence[Sequence[Any]]) -> tuple[Any, ...]:
    if dialect == "sqlite":
        return (json.dumps(rows, separators=(",", ":"), default=str),)
    width = len(rows[0]) if rows else 0
    return tuple(list(column) for column in zip(*rows, strict=True)) if rows else ((),) * width


def _listed_predicate(dialect: Dialect) -> str:
    """The public-feed predicate (the same one the feed uses) as SQL for this dialect."""
    compiled = publicly_visible().compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


class _Statements:
    """The five statements for one dialect, built once."""

    def __init__(self, dialect: Dialect) -> None:
        name = dialect.name
        view_columns = [
            ("window_start", "bigint"),
            ("app_id", "varchar"),
            ("viewer_key", "varchar"),
            ("referrer_origin", "varchar"),
            ("device_type", "varchar"),
            ("viewed_at", "timestamptz"),
        ]
        names = ", ".join(column for column, _ in view_columns)
        listed = _listed_predicate(dialect)
        picked = ", ".join(f"r.{column}" for column, _ in view_columns)
        self.insert_views = (
            f"INSERT INTO app_views ({names}) SELECT {picked} "
            f"FROM {_rows_source(name, view_columns)} "
            f"WHERE EXISTS (SELECT 1 FROM apps WHERE apps.id = r.app_id AND {listed}) "
            "ON CONFLICT (window_start, app_id, viewer_key) DO NOTHING "
            "RETURNING window_start, app_id, viewer_key"
        )
        viewers = [("day", "date"), ("app_id", "varchar"), ("viewer_key", "varchar")]
        self.insert_daily_viewers = (
            "INSERT INTO app_daily_viewers (day, app_id, viewer_key) "
            f"SELECT r.day, r.app_id, r.viewer_key FROM {_rows_source(name, viewers)} "
            # On SQLite a WHERE keeps an upsert after a SELECT parseable.
            "WHERE true ON CONFLICT (day, app_id, viewer_key) DO NOTHING "
            "RETURNING app_id, day"
        )
        self.add_app_views = (
            "UPDATE apps SET view_count = apps.view_count + r.n "
            f"FROM {_rows_source(name, [('id', 'varchar'), ('n', 'bigint')])} "
            "WHERE apps.id = r.id"
        )
        daily = [("app_id", "varchar"), ("day", "date"), ("n", "integer"), ("u", "integer")]
        self.add_daily = (
            "INSERT INTO app_daily_stats (app_id, day, views, unique_viewers, stars) "
            f"SELECT r.app_id, r.day, r.n, r.u, 0 FROM {_rows_source(name, daily)} "
            # ORDER BY fixes the lock order.
            "WHERE true ORDER BY r.app_id, r.day "
            "ON CONFLICT (app_id, day) DO UPDATE "
            "SET views = app_daily_stats.views + excluded.views, "
            "unique_viewers = app_daily_stats.unique_viewers + excluded.unique_viewers"
        )
        breakdown = [
            ("app_id", "varchar"),
            ("day", "date"),
            ("dimension", "varchar"),
            ("value", "varchar"),
            ("n", "integer"),
        ]
        self.add_breakdowns = (
            "INSERT INTO app_daily_breakdowns (app_id, day, dimension, value, views) "
            f"SELECT r.app_id, r.day, r.dimension, r.value, r.n "
            f"FROM {_rows_source(name, breakdown)} "
            "WHERE true ORDER BY r.app_id, r.day, r.dimension, r.value "
            "ON CONFLICT (app_id, day, dimension, value) DO UPDATE "
            "SET views = app_daily_breakdowns.views + excluded.views"
        )
        # Values as the columns store them (SQLite: UTC text without offset, ISO days).
        viewed_at = AppView.__table__.c.viewed_at.type
        self.viewed_at: Callable[[Any], Any] = viewed_at._cached_bind_processor(dialect) or (
            lambda value: value
        )
        self.day: Callable[[date], Any] = (
            (lambda day: day.isoformat()) if name == "sqlite" else (lambda day: day)
        )
        self.read_day: Callable[[Any], date] = (
            date.fromisoformat if name == "sqlite" else (lambda day: day)
        )


_STATEMENTS: dict[str, _Statements] = {}


class ViewIngestRepository:
    """The statements of :meth:`AnalyticsService.ingest`, in the caller's transaction."""

    def __init__(self, session: Session) -> None:
        self.connection: Connection = session.connection()
        dialect = self.connection.dialect
        self.dialect = dialect.name
        self.sql = _STATEMENTS.get(dialect.name) or _STATEMENTS.setdefault(
            dialect.name, _Statements(dialect)
        )

    def _run(self, sql: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        result = self.connection.exec_driver_sql(sql, _rows_param(self.dialect, rows))
        # fetchall: one driver call for the batch (iterating a result fetches row by row).
        return list(result.fetchall()) if result.returns_rows else []

    def insert_views(self, views: Sequence[NewView]) -> set[WindowKey]:
        """Insert the views of apps in the public feed; the keys of those that were new."""
        if not views:
            return set()
        stamp = self.sql.viewed_at
        rows = [
            (
                v.window_start,
                v.app_id,
                v.viewer_key,
                v.referrer_origin,
                v.device_type.value,
                stamp(v.viewed_at),
            )
            for v in views
        ]
        # In index order: neighbouring rows land on the same B-tree pages (fewer pages
        # touched and written than in arrival order), and lock in one order.
        rows.sort()
        return {(r[1], r[2], int(r[0])) for r in self._run(self.sql.insert_views, rows)}

    def insert_daily_viewers(self, slots: set[tuple[date, str, str]]) -> list[tuple[str, date]]:
        """Record (day, app, viewer) slots; the (app, day) of each one that was new."""
        if not slots:
            return []
        day = self.sql.day
        rows = sorted((day(d), app_id, key) for d, app_id, key in slots)
        read_day = self.sql.read_day
        return [(r[0], read_day(r[1])) for r in self._run(self.sql.insert_daily_viewers, rows)]

    def add_app_views(self, counts: dict[str, int]) -> None:
        if counts:
            self._run(self.sql.add_app_views, sorted(counts.items()))

    def add_daily(self, deltas: Sequence[DailyDelta]) -> None:
        """Add views and unique viewers to each (app, day) rollup."""
        if deltas:
            day = self.sql.day
            rows = sorted((d.app_id, day(d.day), d.views, d.unique_viewers) for d in deltas)
            self._run(self.sql.add_daily, rows)

    def add_breakdowns(self, deltas: Sequence[BreakdownDelta]) -> None:
        if deltas:
            day = self.sql.day
            rows = sorted(
                (d.app_id, day(d.day), d.dimension.value, d.value, d.views) for d in deltas
            )
            self._run(self.sql.add_breakdowns, rows)
