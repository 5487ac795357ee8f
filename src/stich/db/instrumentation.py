"""Per-unit-of-work statement counting and the slow-query log.

Counts feed the access log (statements and database time per request) and the tests
that forbid N+1 queries. Parameters are never logged: they may hold credentials.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
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
        if elapsed * 1000 >= slow_query_ms:
            log.warning(
                "slow query",
                engine=name,
                duration_ms=round(elapsed * 1000, 2),
                statement=" ".join(statement.split())[:2000],
                parameters="[redacted]",
            )
