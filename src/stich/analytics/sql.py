"""SQL that means the same on SQLite and PostgreSQL: day arithmetic, upserts, and
SQLite's ``INDEXED BY`` table hint.

Timestamps are UTC on both backends (``UTCDateTime``); SQLite keeps them as ISO text and
dates as ``YYYY-MM-DD`` text, PostgreSQL as ``timestamptz`` and ``date``. These two
constructs hide the difference, so a day bucket is the same day on either backend.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Date, Integer, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement


class utc_day(FunctionElement[date]):  # noqa: N801 - reads as a SQL function
    """The UTC calendar day of a ``UTCDateTime`` column."""

    type = Date()
    name = "utc_day"
    inherit_cache = True


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_day, "postgresql")
def _utc_day_postgresql(element: utc_day, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(({compiler.process(element.clauses, **kw)}) AT TIME ZONE 'UTC' AS DATE)"


class days_before(FunctionElement[int]):  # noqa: N801 - reads as a SQL function
    """Whole days from a ``Date`` column to a later reference day: ``reference - day``."""

    type = Integer()
    name = "days_before"
    inherit_cache = True


@compiles(days_before, "sqlite")
def _days_before_sqlite(element: days_before, compiler: SQLCompiler, **kw: Any) -> str:
    reference, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday({reference}) - julianday({day}) AS INTEGER)"


@compiles(days_before, "postgresql")
def _days_before_postgresql(element: days_before, compiler: SQLCompiler, **kw: Any) -> str:
    reference, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({reference} AS DATE) - {day})"


def insert_for(session: Session, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into ``model``'s table with ``on_conflict_do_nothing`` /
    ``on_conflict_do_update`` and ``excluded`` for the session's backend (both dialects
    spell them the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def table_of(model: type[Any]) -> Table:
    """A mapped class's Table, typed as one (``__table__`` is typed as any FromClause)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


@compiles(Table, "sqlite")
def _table_with_sqlite_hint(element: Table, compiler: SQLCompiler, **kw: Any) -> str:
    """Render ``select.with_hint(table, "INDEXED BY ix", "sqlite")`` after the table name.

    SQLAlchemy's SQLite dialect drops table hints; SQLite's own ``INDEXED BY`` is one.
    Only statements that ask for a hint change.
    """
    text: str = compiler.visit_table(element, **kw)  # type: ignore[no-untyped-call]
    hint = (kw.get("fromhints") or {}).get(element)
    return f"{text} {hint}" if hint and kw.get("asfrom") else text
