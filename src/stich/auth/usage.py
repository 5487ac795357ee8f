"""API key usage (``usage_count``, ``last_used_at``) without a write per request, and with
a bound on what a crash can lose.

A key's use is written at once when the key has not been written for an interval (a
minute); uses within the interval are counted in memory and written together by a
background flusher that runs once per interval while anything is pending. So every use
reaches the database within about one interval, whether or not the key is used again,
and a process that dies (crash, kill, restart) loses at most the uses of its last
interval — never a key or a permission. ``GET /keys`` adds the answering process's
pending uses, so its answer is current.
"""

from __future__ import annotations

import threading
import time
import weakref
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError

from stich.auth.repository import AuthRepository
from stich.db import Database
from stich.db.base import utcnow

log = structlog.get_logger("stich.auth")

INTERVAL = timedelta(minutes=1)


class KeyUsage:
    def __init__(self, database: Database, interval_seconds: float | None = None) -> None:
        # Weak: the registry below is keyed by the database, which must be able to go.
        self._database = weakref.ref(database)
        self.interval = INTERVAL.total_seconds() if interval_seconds is None else interval_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, int] = {}
        self._written_at: dict[str, float] = {}
        self._flusher: threading.Thread | None = None

    def record(self, key_id: str) -> None:
        """Count one use: written now if the key was not written within the interval,
        else by the flusher within the interval."""
        now = time.monotonic()
        with self._lock:
            last = self._written_at.get(key_id)
            if last is not None and now - last < self.interval:
                self._pending[key_id] = self._pending.get(key_id, 0) + 1
                self._start_flusher()
                return
            self._written_at[key_id] = now
        self._write({key_id: 1})

    def pending(self, key_id: str) -> int:
        with self._lock:
            return self._pending.get(key_id, 0)

    @property
    def flusher_running(self) -> bool:
        with self._lock:
            return self._flusher is not None

    def flush(self) -> int:
        """Write every pending use in one transaction; how many uses were written."""
        with self._lock:
            batch, self._pending = self._pending, {}
            now = time.monotonic()
            for key_id in batch:
                self._written_at[key_id] = now
        return sum(batch.values()) if batch and self._write(batch) else 0

    def _write(self, uses: dict[str, int]) -> bool:
        database = self._database()
        if database is None:
            return True  # the database is gone, and its keys with it
        try:
            with database.write() as uow:
                repo = AuthRepository(uow.session)
                for key_id, count in uses.items():
                    repo.add_key_usage(key_id, count, utcnow())
        except SQLAlchemyError as exc:
            # Never fail a request over bookkeeping: keep the uses for the next flush.
            log.warning("api key usage not written yet", error_type=type(exc).__name__)
            with self._lock:
                for key_id, count in uses.items():
                    self._pending[key_id] = self._pending.get(key_id, 0) + count
                self._start_flusher()
            return False
        return True

    def _start_flusher(self) -> None:
        """(Under the lock.) One flusher per instance, only while uses are pending."""
        if self._flusher is None:
            self._flusher = threading.Thread(
                target=self._flush_periodically, name="stich-key-usage", daemon=True
            )
            self._flusher.start()

    def _flush_periodically(self) -> None:
        while True:
            time.sleep(self.interval)
            self.flush()
            with self._lock:
                if not self._pending:
                    self._flusher = None
                    return


_by_database: weakref.WeakKeyDictionary[Database, KeyUsage] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def key_usage_for(database: Database) -> KeyUsage:
    """The usage counter of one database (one per process and database)."""
    with _registry_lock:
        usage = _by_database.get(database)
        if usage is None:
            usage = _by_database[database] = KeyUsage(database)
        return usage
