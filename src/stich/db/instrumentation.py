"""Per-unit-of-work statement counting and the slow-query log.

Counts feed the access log (statements and database time per request) and the tests
that forbid N+1 queries. Parameters are never logged: they may hold credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Engine, event

log = structlog.get_logger("stich.db")


@dataclass
class QueryStats:
    statements: int = 0
    seconds: float = 0.0


_current_stats: ContextVar[QueryStats | None] = ContextVar("stich_query_stats", default=None)


@contextmanager
def track_queries() -> Iterator[QueryStats]:
    """Count statements executed in this context (thread or task) while the block runs."""
    stats = QueryStats()
    token = _current_stats.set(stats)
    try:
        yield stats
    finally:
        _current_stats.reset(token)


def current_stats() -> QueryStats | None:
    return _current_stats.get()


# --- observers (metrics, see stich.observability) ------------------------------------
# Process-wide hooks, so exporters can count what every engine does without owning the
# engines. Observers run inside statement execution: they must be cheap, and one that
# fails is logged, never allowed to fail the statement.

StatementObserver = Callable[[str, float, bool], None]
"""Called after each statement with (engine name, seconds, whether it was slow)."""


@dataclass(frozen=True)
class ReadRouteEvent:
    """Where one read unit of work ran, and why (see stich.db.routing)."""

    served_by: str  # "primary", "replica-1", ...
    consistency: str  # "fast", "fresh" or "bookmark"
    fallback: str | None = None  # why the primary served a read a replica could have
    waited_ms: float = 0.0  # time spent waiting for a replica to reach a bookmark
    failed_over_from: str | None = None  # the replica that failed mid-read


ReadRouteObserver = Callable[[ReadRouteEvent], None]

_statement_observers: list[StatementObserver] = []
_read_route_observers: list[ReadRouteObserver] = []


def add_statement_observer(observer: StatementObserver) -> None:
    if observer not in _statement_observers:
        _statement_observers.append(observer)


def remove_statement_observer(observer: StatementObserver) -> None:
    if observer in _statement_observers:
        _statement_observers.remove(observer)


def add_read_route_observer(observer: ReadRouteObserver) -> None:
    if observer not in _read_route_observers:
        _read_route_observers.append(observer)


def remove_read_route_observer(observer: ReadRouteObserver) -> None:
    if observer in _read_route_observers:
        _read_route_observers.remove(observer)


def record_read_route(event: ReadRouteEvent) -> None:
    """Tell the observers where a read unit of work ran (called by ``Database.read``)."""
    for observer in tuple(_read_route_observers):
        try:
            observer(event)
        except Exception:
            log.exception("read route observer failed")


def _notify_statement(engine_name: str, seconds: float, slow: bool) -> None:
    for observer in tuple(_statement_observers):
        try:
            observer(engine_name, seconds, slow)
        except Exception:
            log.exception("statement observer failed")


def instrument_engine(engine: Engine, *, name: str, slow_query_ms: float) -> None:
    """Attach timing to an engine; ``name`` says which node served ("primary", "replica-1")."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        conn.info.setdefault("stich_query_start", []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool
    ) -> None:
        elapsed = time.perf_counter() - conn.info["stich_query_start"].pop()
        stats = _current_stats.get()
        if stats is not None:
            stats.statements += 1
            stats.seconds += elapsed
        # Bulk executemany batches are slow by design; the log is for single statements.
        slow = elapsed * 1000 >= slow_query_ms and not executemany
        if slow:
            log.warning(
                "slow query",
                engine=name,
                duration_ms=round(elapsed * 1000, 2),
                statement=" ".join(statement.split())[:2000],
                parameters="[redacted]",
            )
        if _statement_observers:
            _notify_statement(name, elapsed, slow)

    @event.listens_for(engine, "handle_error")
    def _failed(context: Any) -> None:
        # A statement that failed at the cursor never reaches after_cursor_execute: drop the
        # start time its before_cursor_execute pushed, so the stack does not grow.
        connection = context.connection
        # SQLAlchemy 2.1's ExceptionContext has no ``cursor``; the execution context does.
        execution = getattr(context, "execution_context", None)
        cursor = getattr(execution, "cursor", None)
        if connection is None or cursor is None or getattr(context, "is_pre_ping", False):
            return
        starts = connection.info.get("stich_query_start")
        if starts:
            starts.pop()
