"""The view queue: requests hand views over, batches are counted off the request path.

A request only *prepares* a view (:meth:`AnalyticsService.prepare`: keyed hashes, origin,
device; nothing reversible) and puts it here; it never waits for the database. Two
interchangeable backends, chosen by ``STICH_VIEW_QUEUE_URL``:

- :class:`InProcessViewQueue` (no URL, the default): a bounded buffer per server process,
  counted by a thread of that process every ``STICH_VIEW_FLUSH_MS`` or as soon as a batch
  is waiting, and on shutdown. A crash (kill -9, power loss) loses what the buffer held:
  at most one flush interval of that process's views. A full buffer sheds views (counted
  in ``shed``), never requests. A failed batch (database busy or down) is put back and
  retried with back-off; views past the buffer's bound are shed meanwhile.
- :class:`stich.analytics.redis_queue.RedisViewQueue` (``redis://...``): a Redis stream
  that ``stich worker`` consumes with a consumer group, at least once.

Either way the de-duplication key (app, viewer, window) is a unique key of ``app_views``
and ingestion inserts only what is absent, so a batch counted twice counts once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from stich.analytics.repository import NewView
from stich.analytics.service import AnalyticsService
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database

log = structlog.get_logger("stich.views")
MAX_BACKOFF_S = 5.0


@dataclass
class ViewQueueStats:
    """What a queue did since it started (exported as metrics)."""

    queued: int = 0  # views accepted by put()
    shed: int = 0  # views dropped: buffer full, or the queue unreachable
    ingested: int = 0  # views handed to the database in committed batches
    counted: int = 0  # of those, views that were new (the rest were repeats)
    batches: int = 0
    failures: int = 0  # batches that failed (and were retried)


class ViewQueue(Protocol):
    stats: ViewQueueStats

    def put(self, view: NewView) -> bool:
        """Queue a view without waiting for the database; False if it was shed."""

    def flush(self) -> int:
        """Count everything queued by this process now; how many views were new."""

    def backlog(self) -> int | None:
        """Views waiting to be counted (None when unknown)."""

    def start(self) -> None: ...

    def close(self) -> None:
        """Flush what this process holds and stop its threads."""


def ingest_batch(
    db: Database, settings: Settings, hasher: KeyedHasher, views: Sequence[NewView]
) -> int:
    """Count one batch in one write transaction; how many views were new."""
    with db.write() as uow:
        service = AnalyticsService(
            uow.session, hasher, window_seconds=settings.view_dedup_window_seconds
        )
        return service.ingest(views)


class InProcessViewQueue:
    """A bounded buffer of this process, counted by a flusher thread."""

    def __init__(self, db: Database, hasher: KeyedHasher, settings: Settings | None = None) -> None:
        settings = settings or db.settings
        self.db = db
        self.hasher = hasher
        self.settings = settings
        self.capacity = settings.view_buffer_size
        self.batch_size = settings.view_batch_size
        self.interval = settings.view_flush_ms / 1000
        self.stats = ViewQueueStats()
        self._buffer: deque[NewView] = deque()
        self._wake = threading.Condition()
        self._ingest_lock = threading.Lock()  # one batch at a time, thread or flush()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def put(self, view: NewView) -> bool:
        with self._wake:
            if len(self._buffer) >= self.capacity:
                self.stats.shed += 1
                return False
            self._buffer.append(view)
            self.stats.queued += 1
            if len(self._buffer) >= self.batch_size:
                self._wake.notify()
        return True

    def backlog(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="stich-views", daemon=True)
            self._thread.start()

    def flush(self) -> int:
        counted = 0
        while self._buffer:
            ok, new = self._ingest_next()
            if not ok:
                break
            counted += new
        return counted

    def close(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        if self._buffer:
            log.error("views lost at shutdown", views=len(self._buffer))

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._wake:
                if backoff:  # after a failure: the whole back-off, however full the buffer
                    deadline = time.monotonic() + backoff
                    while not self._stopping and (left := deadline - time.monotonic()) > 0:
                        self._wake.wait(timeout=left)
                elif not self._stopping and len(self._buffer) < self.batch_size:
                    self._wake.wait(timeout=self.interval)
                if self._stopping:
                    return
            ok = True
            while ok and self._buffer and not self._stopping:
                ok, _ = self._ingest_next()
                if len(self._buffer) < self.batch_size:
                    break  # a partial batch waits for the next tick
            backoff = 0.0 if ok else min(max(backoff * 2, self.interval), MAX_BACKOFF_S)

    def _ingest_next(self) -> tuple[bool, int]:
        """Count the next batch; on failure put it back in front. (ok, views counted)."""
        with self._ingest_lock:
            with self._wake:
                n = min(self.batch_size, len(self._buffer))
                batch = [self._buffer.popleft() for _ in range(n)]
            if not batch:
                return True, 0
            try:
                counted = ingest_batch(self.db, self.settings, self.hasher, batch)
            except Exception:
                self.stats.failures += 1
                log.exception("view batch failed; will retry", views=len(batch))
                with self._wake:
                    self._buffer.extendleft(reversed(batch))
                    overflow = len(self._buffer) - self.capacity
                    for _ in range(max(overflow, 0)):
                        self._buffer.pop()  # the newest go first
                        self.stats.shed += 1
                return False, 0
            self.stats.batches += 1
            self.stats.ingested += len(batch)
            self.stats.counted += counted
            return True, counted


def view_queue_for(db: Database, hasher: KeyedHasher, settings: Settings) -> ViewQueue:
    """The queue ``STICH_VIEW_QUEUE_URL`` asks for (not started)."""
    if settings.view_queue_url:
        from stich.analytics.redis_queue import RedisViewQueue

        return RedisViewQueue(settings)
    return InProcessViewQueue(db, hasher, settings)
