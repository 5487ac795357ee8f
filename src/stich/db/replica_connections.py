"""Replica connections that give up on a server that stops answering.

A frozen replica (a stopped process, a hung host, a network black hole) does not refuse
anything: the kernel still accepts TCP connections into the listen backlog and
acknowledges what we send, so nothing fails, it only never answers. The server's
``statement_timeout`` cannot fire in a server that does not run, libpq's
``connect_timeout`` is at least 2 s, and TCP keepalives and ``tcp_user_timeout`` only
notice a dead network, not a live kernel under a stopped process. So the bound is kept
on the client, for every replica connection (:func:`bound_answers`):

- **statements** (and probes, pings, commits, rollbacks): psycopg's own wait loop gets a
  timeout. When it expires the connection is closed (its protocol state is unknown) and
  :class:`ReplicaNotAnswering` is raised; SQLAlchemy sees a closed connection, so it is a
  disconnect, and the read moves to another node (``stich.db.session``).
- **connecting**: the blocking connect runs in a helper thread and the caller waits for
  it at most the timeout; a connection that arrives after the caller gave up is closed.

Inside :func:`answer_deadline` these share one deadline, so a read that pings a pooled
connection, reconnects and probes spends at most the timeout on one replica in total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import psycopg
from psycopg.abc import RV, PQGen
from psycopg.errors import _WaitTimeout
from sqlalchemy import Engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import ConnectionPoolEntry

_WAIT_INTERVAL = 0.1  # psycopg's: how often a wait wakes to notice Ctrl-C
_deadline: ContextVar[float | None] = ContextVar("stich_replica_deadline", default=None)

# Socket-level limits for a network that swallows packets: keepalives find a dead idle
# connection in the pool within ~16 s, and tcp_user_timeout drops a connection whose sent
# data stays unacknowledged for 10 s (instead of TCP's ~15 minutes of retransmissions).
SOCKET_OPTIONS: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}


class ReplicaNotAnswering(psycopg.OperationalError):
    """A replica did not answer in time; the connection was given up."""


@contextmanager
def answer_deadline(seconds: float) -> Iterator[None]:
    """Every replica wait inside the block shares one deadline, ``seconds`` from now."""
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _limit(default: float) -> float:
    deadline = _deadline.get()
    if deadline is None:
        return default
    return max(0.0, min(default, deadline - time.monotonic()))


class AnswerBoundConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait on the server has a time limit."""

    answer_timeout: float = 1.0

    def wait(
        self, gen: PQGen[RV], interval: float = _WAIT_INTERVAL, timeout: float | None = None
    ) -> RV:
        if timeout is not None:  # psycopg's own timed waits (notifies) keep their meaning
            return super().wait(gen, interval, timeout)
        limit = _limit(self.answer_timeout)
        try:
            return super().wait(gen, interval, limit)
        except _WaitTimeout:
            # Mid-protocol, the connection cannot be reused: closed, it reads as a
            # disconnect to SQLAlchemy, which drops it from the pool.
            self.pgconn.finish()
            raise ReplicaNotAnswering(f"the server did not answer within {limit:.2f} s") from None


def bound_answers(engine: Engine, answer_timeout: float) -> None:
    """Make ``engine`` connect through :class:`AnswerBoundConnection`, within the timeout."""

    @event.listens_for(engine, "do_connect")
    def _connect(
        _dialect: Dialect, _record: ConnectionPoolEntry, cargs: Any, cparams: Any
    ) -> AnswerBoundConnection:
        def connect() -> AnswerBoundConnection:
            connection = AnswerBoundConnection.connect(*cargs, **cparams)
            connection.answer_timeout = answer_timeout
            return connection

        return connect_within(connect, _limit(answer_timeout))


def connect_within(
    connect: Callable[[], AnswerBoundConnection], timeout: float
) -> AnswerBoundConnection:
    """Run a blocking ``connect`` in a helper thread; wait for it at most ``timeout``."""
    if timeout <= 0:
        raise ReplicaNotAnswering("no time left to connect")
    outcome: Future[AnswerBoundConnection] = Future()

    def attempt() -> None:
        try:
            outcome.set_result(connect())
        except BaseException as exc:  # handed to the waiting caller
            outcome.set_exception(exc)

    threading.Thread(target=attempt, name="stich-replica-connect", daemon=True).start()
    try:
        return outcome.result(timeout=timeout)
    except TimeoutError:
        outcome.add_done_callback(_close_late_arrival)
        raise ReplicaNotAnswering(f"no connection within {timeout:.2f} s") from None


def _close_late_arrival(outcome: Future[AnswerBoundConnection]) -> None:
    if outcome.exception() is None:
        outcome.result().close()
