"""Database faults a client should retry rather than report: busy, full, read-only.

Recognised by error code, never by message text: ``sqlite_errorname`` on SQLite (its
primary code, so ``SQLITE_READONLY_CANTINIT`` is read-only too), SQLSTATE on PostgreSQL.

- ``database_busy``: SQLITE_BUSY (no write lock within ``busy_timeout``); PostgreSQL
  55P03 lock_not_available, 53300 too_many_connections.
- ``storage_full``: SQLITE_FULL (ENOSPC, or ``max_page_count``); PostgreSQL 53100 disk_full.
- ``database_read_only``: SQLITE_READONLY (the file was opened read-only); PostgreSQL
  25006 read_only_sql_transaction on the write pool (a demoted primary).

Each leaves as :class:`RetryLater` (503 with ``Retry-After``) instead of a 500. The two
storage faults are also tracked per :class:`~stich.db.Database` by :class:`WriteHealth`:
logged once when an episode starts and once when a write succeeds again, and reported by
``/readyz`` meanwhile. (A write through ``db.read()`` is a different error: see
``ReadOnlyTransactionError``.)
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import structlog

from stich.errors import RetryLater

log = structlog.get_logger("stich.db")


class Fault(StrEnum):
    BUSY = "database_busy"
    STORAGE_FULL = "storage_full"
    READ_ONLY = "database_read_only"


_SQLITE_PRIMARY_CODE: dict[str, Fault] = {
    "SQLITE_BUSY": Fault.BUSY,
    "SQLITE_FULL": Fault.STORAGE_FULL,
    "SQLITE_READONLY": Fault.READ_ONLY,
}
_PG_SQLSTATE: dict[str, Fault] = {
    "55P03": Fault.BUSY,  # lock_not_available (lock_timeout)
    "53300": Fault.BUSY,  # too_many_connections
    "53100": Fault.STORAGE_FULL,  # disk_full
    "25006": Fault.READ_ONLY,  # read_only_sql_transaction
}
_ANSWERS: dict[Fault, tuple[str, int]] = {
    Fault.BUSY: ("the database is busy with other writes; try again shortly", 1),
    Fault.STORAGE_FULL: ("the database has no space left for writes; try again later", 10),
    Fault.READ_ONLY: ("the database is read-only at the moment; try again later", 10),
}


def error_code(exc: BaseException) -> str | None:
    """The driver's error code: ``sqlite_errorname`` or SQLSTATE (of ``exc.orig`` if any)."""
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        name: str | None = getattr(orig, "sqlite_errorname", None)
        return name
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    return sqlstate


def classify(exc: BaseException) -> Fault | None:
    code = error_code(exc) or ""
    if code.startswith("SQLITE_"):
        primary = "_".join(code.split("_")[:2])  # SQLITE_BUSY_SNAPSHOT -> SQLITE_BUSY
        return _SQLITE_PRIMARY_CODE.get(primary)
    return _PG_SQLSTATE.get(code)


def retry_later(fault: Fault) -> RetryLater:
    message, seconds = _ANSWERS[fault]
    return RetryLater(message, code=fault.value, retry_after_seconds=seconds)


def translate_fault(exc: BaseException) -> RetryLater | None:
    """The 503 for a busy, full or read-only database; None for any other error."""
    fault = classify(exc)
    return retry_later(fault) if fault is not None else None


@dataclass(frozen=True)
class Episode:
    """Writes failing for one storage fault, from its first failure to its last so far."""

    fault: Fault
    error_code: str | None
    started: float
    last_failure: float
    failures: int


class WriteHealth:
    """Whether this process's writes are failing for lack of storage (full or read-only).

    ``/readyz`` reports an episode while its last failure is at most ``report_seconds``
    old: a process taken out of rotation gets no writes to prove it recovered, so it
    must come back to be tried again; a failing write renews the report, a successful
    one ends the episode at once.
    """

    def __init__(
        self, report_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.report_seconds = report_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._episode: Episode | None = None

    def failed(self, exc: BaseException) -> RetryLater | None:
        """A write failed with ``exc``: its 503 if it is a fault, else None (re-raise it)."""
        fault = classify(exc)
        if fault is None:
            return None
        if fault is not Fault.BUSY:  # contention is not a storage condition
            self._record(fault, error_code(exc))
        return retry_later(fault)

    def succeeded(self) -> None:
        if self._episode is None:  # the usual case: no lock on the write path
            return
        with self._lock:
            episode, self._episode = self._episode, None
        if episode is not None:
            log.warning(
                "database writes recovered",
                fault=episode.fault.value,
                failed_writes=episode.failures,
                seconds=round(self._clock() - episode.started, 1),
            )

    def current(self) -> Episode | None:
        """The episode to report, if writes failed recently and none succeeded since."""
        episode = self._episode
        if episode is None or self._clock() - episode.last_failure > self.report_seconds:
            return None
        return episode

    def _record(self, fault: Fault, code: str | None) -> None:
        now = self._clock()
        with self._lock:
            previous = self._episode
            if previous is None or previous.fault is not fault:
                starts, started, failures = True, now, 0
            else:
                starts, started, failures = False, previous.started, previous.failures
            self._episode = Episode(fault, code, started, last_failure=now, failures=failures + 1)
        if starts:  # once per episode, not once per request
            log.error(
                "database writes failing; answering 503 until a write succeeds",
                fault=fault.value,
                error_code=code,
            )
