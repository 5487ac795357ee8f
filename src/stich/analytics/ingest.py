"""All SQL of set-based view ingestion: a batch of N views costs six statements, whatever N.

Each statement takes its rows as *one* parameter: a JSON array read with ``json_each`` on
SQLite, and column arrays read with ``unnest`` on PostgreSQL. So the statement text is the
same for every batch (prepared once, no per-row placeholders, no SQLAlchemy compilation on
the hot path) and the database, not Python, loops over the rows.

1. insert the views of apps in the public feed, skipping any whose (app, viewer, window)
   is already there (the unique key is the de-duplication: a batch delivered twice counts
   once), returning the keys that were new;
2. ``apps.view_count += n``;
3. ``app_daily_stats.views += n`` (an upsert, which also locks each (app, day) row);
4. the windows each new viewer already had that day (to count unique viewers once);
5. ``app_daily_stats.unique_viewers += n``;
6. ``app_daily_breakdowns.views += n`` per referrer origin and device type (an upsert).

Rows are fed in (app id, day) order, the order every writer of these tables locks them in,
so concurrent batches on PostgreSQL queue behind each other instead of deadlocking.
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

# (app id, viewer key, first window start of the day, first window start of the next day)
DaySlot = tuple[str, str, int, int]


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
    """The six statements for one dialect, built once."""

    def __init__(self, dialect: Dialect) -> None:
        name = dialect.name
        view_columns = [
            ("app_id", "varchar"),
            ("viewer_key", "varchar"),
            ("window_start", "bigint"),
            ("user_id", "varchar"),
            ("referrer_origin", "varchar"),
            ("device_type", "varchar"),
            ("viewed_at", "timestamptz"),
        ]
        names = ", ".join(column for column, _ in view_columns)
        listed = _listed_predicate(dialect)
        # SQLite's planner may not put the batch outside: CROSS JOIN makes it the outer loop.
        join = "CROSS JOIN" if name == "sqlite" else "JOIN"
        picked = ", ".join(f"r.{column}" for column, _ in view_columns)
        self.insert_views = (
            f"INSERT INTO app_views ({names}) SELECT {picked} "
            f"FROM {_rows_source(name, view_columns)} "
            f"WHERE EXISTS (SELECT 1 FROM apps WHERE apps.id = r.app_id AND {listed}) "
            "ON CONFLICT (app_id, viewer_key, window_start) DO NOTHING "
            "RETURNING app_id, viewer_key, window_start"
        )
        self.add_app_views = (
            "UPDATE apps SET view_count = apps.view_count + r.n "
            f"FROM {_rows_source(name, [('id', 'varchar'), ('n', 'bigint')])} "
            "WHERE apps.id = r.id"
        )
        daily = [("app_id", "varchar"), ("day", "date"), ("n", "integer")]
        self.add_daily_views = (
            "INSERT INTO app_daily_stats (app_id, day, views, unique_viewers, stars) "
            f"SELECT r.app_id, r.day, r.n, 0, 0 FROM {_rows_source(name, daily)} "
            # ORDER BY fixes the lock order; on SQLite a WHERE keeps the upsert parseable.
            "WHERE true ORDER BY r.app_id, r.day "
            "ON CONFLICT (app_id, day) DO UPDATE "
            "SET views = app_daily_stats.views + excluded.views"
        )
        slots = [("app_id", "varchar"), ("viewer_key", "varchar"), ("lo", "bigint")]
        slots.append(("hi", "bigint"))
        self.windows_of = (
            "SELECT v.app_id, v.viewer_key, v.window_start "
            f"FROM {_rows_source(name, slots)} {join} app_views AS v "
            "ON v.app_id = r.app_id AND v.viewer_key = r.viewer_key "
            "AND v.window_start >= r.lo AND v.window_start < r.hi"
        )
        self.add_unique_viewers = (
            "UPDATE app_daily_stats SET unique_viewers = app_daily_stats.unique_viewers + r.n "
            f"FROM {_rows_source(name, daily)} "
            "WHERE app_daily_stats.app_id = r.app_id AND app_daily_stats.day = r.day"
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
                v.app_id,
                v.viewer_key,
                v.window_start,
                v.user_id,
                v.referrer_origin,
                v.device_type.value,
                stamp(v.viewed_at),
            )
            for v in views
        ]
        # In index order: neighbouring rows land on the same B-tree pages (fewer pages
        # touched and written than in arrival order).
        rows.sort()
        return {(r[0], r[1], int(r[2])) for r in self._run(self.sql.insert_views, rows)}

    def add_app_views(self, counts: dict[str, int]) -> None:
        if counts:
            self._run(self.sql.add_app_views, sorted(counts.items()))

    def add_daily_views(self, deltas: Sequence[DailyDelta]) -> None:
        self._daily(self.sql.add_daily_views, deltas)

    def add_unique_viewers(self, deltas: Sequence[DailyDelta]) -> None:
        self._daily(self.sql.add_unique_viewers, deltas)

    def _daily(self, sql: str, deltas: Sequence[DailyDelta]) -> None:
        if deltas:
            day = self.sql.day
            rows = sorted((d.app_id, day(d.day), d.count) for d in deltas)
            self._run(sql, rows)

    def windows_of(self, slots: Sequence[DaySlot]) -> set[WindowKey]:
        """Every window in which each (app, viewer) of ``slots`` viewed the app within the
        slot's day."""
        if not slots:
            return set()
        return {(r[0], r[1], int(r[2])) for r in self._run(self.sql.windows_of, slots)}

    def add_breakdowns(self, deltas: Sequence[BreakdownDelta]) -> None:
        if deltas:
            day = self.sql.day
            rows = sorted(
                (d.app_id, day(d.day), d.dimension.value, d.value, d.views) for d in deltas
            )
            self._run(self.sql.add_breakdowns, rows)
