"""PostgreSQL read replicas: their engines and a background check of health and lag.

Each replica gets its own engine whose connections are read-only twice over: the server
is a hot standby, and every session starts with ``default_transaction_read_only = on``
(and reads also set ``postgresql_readonly``), so a write through one fails loudly even if
the URL points at a primary by mistake.

A daemon thread, started on first use (so it never exists in a process that forks after
building the Database), checks every replica each ``replica_check_interval_seconds``: is it
reachable, is it still in recovery, how far has it replayed, and how far behind is it —
in seconds (``now() - pg_last_xact_replay_timestamp()``) and in bytes (against the
primary's WAL position). A replica that is unreachable, or lags beyond BOTH limits, is
skipped until a later check finds it healthy again. Requiring both limits is GitLab's
rule: on an idle primary the replay timestamp grows old although nothing is missing.
``ReplicaSet.stop()`` (called by ``Database.dispose()``) stops the thread.

Every wait on a replica connection, the check's included, is bounded by
``replica_answer_timeout_seconds`` (``stich.db.replica_connections``), so a replica that
stops answering is found out, and skipped, within one check.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass

import structlog
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError

from stich.config import Settings
from stich.db.instrumentation import instrument_engine
from stich.db.replica_connections import SOCKET_OPTIONS, answer_deadline, bound_answers

log = structlog.get_logger("stich.db.replicas")

_HEALTH_SQL = text(
    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
    " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8"
)
_PRIMARY_POSITION_SQL = text("SELECT pg_current_wal_lsn()::text")

# SQLSTATEs after which a read on a replica is worth retrying elsewhere: the server went
# away (57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, class 08
# connection exceptions) or cancelled the query for a recovery conflict (on a hot standby
# 40001 serialization_failure and 40P01 deadlock_detected mean exactly that, because a
# standby runs no serializable or writing transactions that could cause them).
_RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "57P04"})


def parse_lsn(lsn: str) -> int:
    """``'16/B374D848'`` -> a comparable integer byte position."""
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


def is_replica_failure(exc: DBAPIError) -> bool:
    """Did a read fail because of the replica (gone, or a recovery conflict), not the query?"""
    if exc.connection_invalidated:
        return True
    sqlstate: str | None = getattr(exc.orig, "sqlstate", None)
    if sqlstate is None:
        return isinstance(exc, OperationalError)  # the client lost or could not make a link
    return sqlstate.startswith("08") or sqlstate in _RETRYABLE_SQLSTATES


def describe_failure(exc: BaseException) -> str:
    """A short, credential-free reason for logs: the driver's error class and SQLSTATE."""
    orig = getattr(exc, "orig", None) or exc
    sqlstate = getattr(orig, "sqlstate", None)
    return f"{type(orig).__name__}" + (f" ({sqlstate})" if sqlstate else "")


@dataclass(frozen=True)
class ReplicaHealth:
    """What the last check (or a failed read) learned about one replica."""

    usable: bool
    reason: str | None = None  # why it is skipped
    position: int | None = None  # replayed WAL position
    lag_seconds: float | None = None
    lag_bytes: int | None = None
    checked_at: float | None = None  # time.monotonic() of the check


class Replica:
    """One streaming replica: its engine and its latest health (replaced atomically)."""

    def __init__(self, name: str, url: str, settings: Settings) -> None:
        self.name = name
        self.engine: Engine = create_engine(
            url,
            pool_size=settings.pool_size,
            max_overflow=0,  # kept open, as the primary's (see create_postgres_engine)
            pool_pre_ping=True,  # a replica restarted since: reconnect at checkout
            pool_recycle=1800,
            connect_args={
                "application_name": f"stich-{name}",
                "connect_timeout": settings.replica_connect_timeout_seconds,
                "options": "-c default_transaction_read_only=on",
                **SOCKET_OPTIONS,
            },
        )
        bound_answers(self.engine, settings.replica_answer_timeout_seconds)
        instrument_engine(self.engine, name=name, slow_query_ms=settings.slow_query_ms)
        # Use this one: a connection that served a read-only transaction is reset to "READ
        # WRITE" when it returns to the pool, which a standby refuses at the next BEGIN.
        self.read_engine: Engine = self.engine.execution_options(postgresql_readonly=True)
        # Until the first check, a replica is assumed usable: a read probes it anyway.
        self.health = ReplicaHealth(usable=True)

    def skip(self, reason: str) -> None:
        """A read could not use this replica: skip it until a check finds it healthy."""
        was_usable = self.health.usable
        self.health = ReplicaHealth(usable=False, reason=reason, checked_at=time.monotonic())
        if was_usable:
            log.warning("read replica skipped", replica=self.name, reason=reason)

    def __repr__(self) -> str:
        return f"Replica({self.name!r}, usable={self.health.usable})"


class ReplicaSet:
    """The configured replicas and the thread that keeps their health current."""

    def __init__(self, settings: Settings, primary: Engine) -> None:
        self.primary = primary
        self.replicas = [
            Replica(f"replica-{index}", url, settings)
            for index, url in enumerate(settings.read_replica_urls, start=1)
        ]
        self.max_lag_seconds = settings.replica_max_lag_seconds
        self.max_lag_bytes = settings.replica_max_lag_bytes
        self.interval = settings.replica_check_interval_seconds
        self.answer_timeout = settings.replica_answer_timeout_seconds
        self._join_timeout = self.interval + len(self.replicas) * self.answer_timeout + 5
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def engines(self) -> list[Engine]:
        return [replica.engine for replica in self.replicas]

    def usable(self) -> list[Replica]:
        """Healthy replicas, rotated on every call so reads spread over them."""
        self.ensure_started()
        healthy = [replica for replica in self.replicas if replica.health.usable]
        if len(healthy) > 1:
            shift = next(self._turn) % len(healthy)
            healthy = healthy[shift:] + healthy[:shift]
        return healthy

    def by_name(self, name: str) -> Replica:
        for replica in self.replicas:
            if replica.name == name:
                return replica
        raise KeyError(name)

    # ----- the background check ---------------------------------------------------------

    def ensure_started(self) -> None:
        """Check once now (so the first reads are routed on facts) and start the thread."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is not None:
                return
            self.check_now()
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stopping,), name="stich-replica-health", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the health thread (it is started again on next use)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None:
            thread.join(timeout=self._join_timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def check_now(self) -> None:
        """One round: the primary's WAL position, then each replica against it."""
        primary_position = self._primary_position()
        for replica in self.replicas:
            before = replica.health
            replica.health = self._check(replica, primary_position)
            self._log_change(replica, before)

    def _run(self, stopping: threading.Event) -> None:
        while not stopping.wait(self.interval):
            try:
                self.check_now()
            except Exception:  # never let the checker die; the next round may succeed
                log.exception("replica health check failed")

    def _primary_position(self) -> int | None:
        try:
            with self.primary.connect() as conn:
                lsn = conn.execute(_PRIMARY_POSITION_SQL).scalar_one()
        except DBAPIError as exc:
            log.warning("primary WAL position unavailable", reason=describe_failure(exc))
            return None
        return parse_lsn(lsn)

    def _check(self, replica: Replica, primary_position: int | None) -> ReplicaHealth:
        now = time.monotonic()
        try:
            with answer_deadline(self.answer_timeout), replica.read_engine.connect() as conn:
                in_recovery, lsn, lag_seconds = _health_row(conn)
        except DBAPIError as exc:
            return ReplicaHealth(False, f"unreachable: {describe_failure(exc)}", checked_at=now)
        if not in_recovery:
            return ReplicaHealth(
                False, "not in recovery (promoted, or not a replica)", checked_at=now
            )
        if lsn is None:
            return ReplicaHealth(False, "has not replayed any WAL yet", checked_at=now)
        position = parse_lsn(lsn)
        lag_bytes = None if primary_position is None else max(0, primary_position - position)
        too_far_behind = (
            lag_seconds is not None
            and lag_seconds > self.max_lag_seconds
            and lag_bytes is not None
            and lag_bytes > self.max_lag_bytes
        )
        return ReplicaHealth(
            usable=not too_far_behind,
            reason="lagging beyond both limits" if too_far_behind else None,
            position=position,
            lag_seconds=lag_seconds,
            lag_bytes=lag_bytes,
            checked_at=now,
        )

    @staticmethod
    def _log_change(replica: Replica, before: ReplicaHealth) -> None:
        after = replica.health
        if before.usable and not after.usable:
            log.warning("read replica skipped", replica=replica.name, reason=after.reason)
        elif not before.usable and after.usable and before.checked_at is not None:
            log.info(
                "read replica usable again",
                replica=replica.name,
                lag_seconds=after.lag_seconds,
                lag_bytes=after.lag_bytes,
            )

    def dispose(self) -> None:
        self.stop()
        for engine in self.engines:
            engine.dispose()


def _health_row(conn: Connection) -> tuple[bool, str | None, float | None]:
    with conn.begin():
        in_recovery, lsn, lag_seconds = conn.execute(_HEALTH_SQL).one()
    return bool(in_recovery), lsn, lag_seconds
