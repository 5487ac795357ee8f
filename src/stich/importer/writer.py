"""Set-based inserts: one prepared statement per table, whatever the batch size.

SQLite: ``INSERT ... VALUES (?, ...) ON CONFLICT DO NOTHING`` run with ``executemany``
(the statement is prepared once, each row is a bind, no SQL is compiled per batch).
PostgreSQL: ``INSERT ... SELECT FROM unnest(%s::type[], ...)`` with one array per column,
so a batch is one statement and one round trip (as ``stich.analytics.ingest`` does).

``ON CONFLICT DO NOTHING`` without a target makes every insert an insert-if-absent on
every unique key of the table: a rerun of the import skips what is there, and two views
in one de-duplication window keep the first. The count of rows actually inserted comes
from the driver's row count.

If a batch fails as a whole (a row the checks in Python did not catch), it is rolled back
to a savepoint and retried row by row, each in its own savepoint, so one bad row is
rejected with the database's reason and the rest of the batch still lands.
"""

# Statement text is built from this module's own column lists; values are always bound.
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

Column = tuple[str, str]  # (name, PostgreSQL type; "jsonb" is sent as text and cast)
Rejected = Callable[[int, str], None]  # (index of the row in the batch, reason)


@dataclass(frozen=True)
class Encode:
    """Python values as each backend's columns store them."""

    dialect: str

    def dt(self, value: datetime | None) -> Any:
        if value is None or self.dialect != "sqlite":
            return value
        # UTCDateTime's SQLite storage: naive UTC, always with microseconds.
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")

    def js(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)

    def b(self, value: bool) -> Any:
        return int(value) if self.dialect == "sqlite" else bool(value)


def _insert_sql(dialect: str, table: str, columns: Sequence[Column]) -> str:
    names = ", ".join(name for name, _ in columns)
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in columns)
        return f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    arrays = ", ".join(
        f"%s::{'text' if pg_type == 'jsonb' else pg_type}[]" for _, pg_type in columns
    )
    picks = ", ".join(
        f"r.{name}::jsonb" if pg_type == "jsonb" else f"r.{name}" for name, pg_type in columns
    )
    return (
        f"INSERT INTO {table} ({names}) SELECT {picks} FROM unnest({arrays}) AS r({names}) "
        "ON CONFLICT DO NOTHING"
    )


def _update_sql(dialect: str, table: str, key: Column, value: Column) -> str:
    """Set one column by key, only where it differs (a rerun updates nothing)."""
    (k, k_type), (v, v_type) = key, value
    if dialect == "sqlite":
        return f"UPDATE {table} SET {v} = ? WHERE {k} = ? AND {v} IS NOT ?"
    return (
        f"UPDATE {table} SET {v} = r.{v} FROM unnest(%s::{k_type}[], %s::{v_type}[]) "
        f"AS r({k}, {v}) WHERE {table}.{k} = r.{k} AND {table}.{v} IS DISTINCT FROM r.{v}"
    )


def database_reason(exc: DBAPIError) -> str:
    """The database's error class (SQLSTATE or SQLite error name), never its message text,
    which may quote the row's values."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    return f"database refused the row ({code or type(orig).__name__})"


class BulkWriter:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.connection: Connection = session.connection()
        self.dialect = self.connection.dialect.name
        self.encode = Encode(self.dialect)

    def insert(
        self,
        table: str,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Any]],
        on_rejected: Rejected,
    ) -> int:
        """Insert-if-absent; how many rows were new."""
        if not rows:
            return 0
        sql = _insert_sql(self.dialect, table, columns)
        # Savepoints on the connection itself (the statements bypass the ORM session, so
        # a session savepoint would never be emitted and a refused row would leave the
        # whole transaction aborted on PostgreSQL).
        try:
            with self.connection.begin_nested():
                return self._run(sql, rows)
        except DBAPIError:
            pass
        inserted = 0
        for index, row in enumerate(rows):
            try:
                with self.connection.begin_nested():
                    inserted += self._run(sql, [row])
            except DBAPIError as exc:
                on_rejected(index, database_reason(exc))
        return inserted

    def update(
        self, table: str, key: Column, value: Column, pairs: Sequence[tuple[Any, Any]]
    ) -> int:
        """``SET value = v WHERE key = k`` for each (k, v) pair; how many rows changed."""
        if not pairs:
            return 0
        sql = _update_sql(self.dialect, table, key, value)
        if self.dialect == "sqlite":
            params: Any = [(v, k, v) for k, v in pairs]
            return int(self.connection.exec_driver_sql(sql, params).rowcount)
        keys, values = zip(*pairs, strict=True)
        return int(self.connection.exec_driver_sql(sql, (list(keys), list(values))).rowcount)

    def _run(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        if self.dialect == "sqlite":
            params: Any = [tuple(r) for r in rows]
        else:
            params = tuple(list(column) for column in zip(*rows, strict=True))
        return int(self.connection.exec_driver_sql(sql, params).rowcount)
