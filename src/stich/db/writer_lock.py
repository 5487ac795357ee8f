"""One SQLite writer at a time, across threads and processes, queued outside SQLite.

SQLite allows one writer per file. A writer that finds the file locked waits in SQLite's
busy handler, which sleeps in growing steps (up to 100 ms) between tries, so under
contention a writer could wait long after the lock was free, and the tail of write
latency grew long and unfair (`stich serve --workers N`, the view flusher). Here writers
queue before ``BEGIN IMMEDIATE``: on a lock of the process (woken the moment it is
released), then, one per process, on an ``flock`` of a file beside the database, tried
every millisecond. Waiting longer than the busy timeout is the same 503 ``database_busy``
as SQLITE_BUSY. Writers from other programs still meet SQLite's own busy handling.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

from stich.db.faults import Fault, retry_later

POLL_S = 0.001
log = structlog.get_logger("stich.db")


class SqliteWriterLock:
    def __init__(self, database: Path | None, timeout_s: float) -> None:
        self.path = database.with_name(database.name + "-writer.lock") if database else None
        self.timeout_s = timeout_s
        self._turn = threading.RLock()  # a nested write in one thread fails in SQLite as before
        self._depth = 0
        self._fd: int | None = None
        self._opened = False

    @contextmanager
    def turn(self) -> Iterator[None]:
        deadline = time.monotonic() + self.timeout_s
        if not self._turn.acquire(timeout=self.timeout_s):
            raise retry_later(Fault.BUSY)
        try:
            self._depth += 1
            fd = self._file() if self._depth == 1 else None
            if fd is not None:
                self._lock_file(fd, deadline)
            try:
                yield
            finally:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._depth -= 1
            self._turn.release()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _lock_file(self, fd: int, deadline: float) -> None:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise retry_later(Fault.BUSY) from None
                time.sleep(POLL_S)

    def _file(self) -> int | None:
        if not self._opened and self.path is not None:
            self._opened = True
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:  # a read-only directory: SQLite's busy handling only
                log.warning("no writer lock file; writers queue in SQLite", error=str(exc))
        return self._fd
