"""Hot read paths: a Core ``SELECT`` compiled once per dialect and run as driver SQL.

SQLAlchemy caches compiled SQL, but finding it costs building the statement and computing
its cache key from the whole expression tree on every call; for a feed page that was most
of its Python time. A :class:`CompiledSelect` is built once per statement *shape*, with a
bound parameter for everything that varies, compiled once per dialect, and executed with
``exec_driver_sql`` on the unit of work's connection: the same transaction, engine events
(statement counts, the slow-query log, the bench's statement capture) and error handling
as any other statement, minus the rebuilding. Bound values go through the parameters'
own bind processors and results through the columns' result processors, so the rows are
exactly what ``session.execute`` of the statement would return.

Statements run this way bypass the ORM's ``do_orm_execute`` hook, so the replica
fail-over is done here (:func:`stich.db.session.run_driver_sql`).

An integer parameter bound with ``literal_execute=True`` (a LIMIT) is written into the
SQL, one text per value: PostgreSQL plans a ``LIMIT $1`` statement afresh on every
execution (its generic plan assumes a tenth of the rows, so it never wins), which cost a
feed page more server CPU than running it; with the value in the text, the prepared
statement keeps one generic plan (docs/benchmarks.md, HTTP).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from stich.db.session import run_driver_sql

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # parameter names in order (qmark), or None (named)
    defaults: dict[str, Any]  # values fixed in the statement (literals, OFFSET 0, ...)
    bind_processors: dict[str, Processor]
    result_processors: tuple[tuple[int, Processor], ...]  # (column index, processor)
    # Integer parameters written into the SQL (bindparam(..., literal_execute=True)), and
    # the SQL for each combination of their values seen so far.
    literals: tuple[str, ...] = ()
    variants: dict[tuple[int, ...], str] = field(default_factory=dict)

    def sql_for(self, params: Mapping[str, Any]) -> str:
        if not self.literals:
            return self.sql
        values = tuple(_integer(params[name]) for name in self.literals)
        sql = self.variants.get(values)
        if sql is None:
            sql = self.sql
            for name, value in zip(self.literals, values, strict=True):
                sql = sql.replace(f"__[POSTCOMPILE_{name}]", str(value))
            self.variants[values] = sql
        return sql


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"a literal parameter must be an int, not {type(value).__name__}")
    return value


class CompiledSelect:
    """A statement compiled once per dialect; :meth:`rows` runs it with new values."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[Sequence[Any]]:
        """Every row, as a sequence of result-processed values (by column position)."""
        compiled = self._for(session.get_bind().dialect)
        sql = compiled.sql_for(params)
        rows = run_driver_sql(session, sql, self._driver_params(compiled, params))
        if not compiled.result_processors:
            return rows
        processed: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for index, process in compiled.result_processors:
                values[index] = process(values[index])
            processed.append(values)
        return processed

    def sql(self, dialect: Dialect, params: Mapping[str, Any]) -> tuple[str, Any]:
        """The SQL and driver parameters :meth:`rows` would send (for EXPLAIN)."""
        compiled = self._for(dialect)
        return compiled.sql_for(params), self._driver_params(compiled, params)

    def _for(self, dialect: Dialect) -> _Compiled:
        return self._compiled.get(dialect.name) or self._compile(dialect)

    @staticmethod
    def _driver_params(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
        values = {**compiled.defaults, **params}
        for name in compiled.literals:
            values.pop(name, None)  # in the SQL itself
        for name, process in compiled.bind_processors.items():
            values[name] = process(values[name])
        if compiled.positional is None:
            return values
        return tuple([values[name] for name in compiled.positional])

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        # Literal-valued parameters (anonymous ``param_1`` and the like); the named ones
        # the caller supplies are left out until then.
        defaults = {
            name: value
            for name, value in compiled.construct_params(_check=False).items()
            if value is not None
        }
        bind_processors: dict[str, Processor] = {}
        for name, process in compiled._bind_processors.items():
            if callable(process):  # (a tuple is per-element processing of a tuple value)
                bind_processors[name] = process
        result_processors: list[tuple[int, Processor]] = []
        for index, column in enumerate(compiled._result_columns):
            convert = column.type._cached_result_processor(dialect, None)
            if convert is not None:
                result_processors.append((index, convert))
        literals = tuple(sorted(p.key for p in compiled.literal_execute_params))
        positional = [n for n in compiled.positiontup or () if n not in literals]
        entry = _Compiled(
            sql=str(compiled),
            positional=tuple(positional) if compiled.positiontup else None,
            defaults=defaults,
            bind_processors=bind_processors,
            result_processors=tuple(result_processors),
            literals=literals,
        )
        self._compiled[dialect.name] = entry
        return entry
