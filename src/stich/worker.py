"""Background work of a deployment: counting queued views and scheduled maintenance.

``stich worker`` runs it in the foreground; with the embedded default each ``stich serve``
process runs the maintenance schedule in a thread (``STICH_EMBEDDED_WORKER``), and its
in-process view queue has a flusher thread of its own, so one server is a whole
deployment and cron is not needed. With a Redis view queue the worker also consumes the
stream (the servers only append to it).

The schedule: ``feed_rankings`` every ``STICH_FEED_RANKING_REFRESH_SECONDS``, the other
jobs every ``STICH_MAINTENANCE_INTERVAL_SECONDS`` (0: never), each run at start-up first.
Every job is idempotent and batched, so several processes running the schedule at once
only repeat cheap "is anything due" checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from stich.analytics.queue import ViewQueue, view_queue_for
from stich.analytics.redis_queue import RedisViewConsumer
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.single_runner import single_runner
from stich.maintenance.jobs import JOB_NAMES, MaintenanceRun, run_maintenance, select_jobs

log = structlog.get_logger("stich.worker")
RANKINGS = "feed_rankings"


class MaintenanceSchedule:
    """Which maintenance is due, and running it."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.monotonic) -> None:
        settings = db.settings
        self.db = db
        self.clock = clock
        self.groups: list[tuple[list[str], float]] = [
            ([RANKINGS], settings.feed_ranking_refresh_seconds)
        ]
        if settings.maintenance_interval_seconds:
            others = [name for name in JOB_NAMES if name != RANKINGS]
            self.groups.append((others, settings.maintenance_interval_seconds))
        self._next = [0.0 for _ in self.groups]  # everything is due at start-up

    def seconds_until_due(self) -> float:
        now = self.clock()
        return max(0.0, min(when - now for when in self._next))

    def run_due(self) -> list[MaintenanceRun]:
        runs: list[MaintenanceRun] = []
        for index, (names, interval) in enumerate(self.groups):
            if self.clock() < self._next[index]:
                continue
            self._next[index] = self.clock() + interval
            try:
                # One process runs each group; the others skip this turn.
                with single_runner(self.db, f"maintenance:{names[0]}") as runner:
                    if not runner:
                        continue
                    run = run_maintenance(self.db, self.db.settings, jobs=select_jobs(names))
            except Exception:
                log.exception("scheduled maintenance failed", jobs=names)
                continue
            runs.append(run)
            if run.changes():
                log.info("scheduled maintenance", **run.changes())
        return runs


class Worker:
    """The background threads of one process; :meth:`stop` ends them cleanly."""

    def __init__(
        self,
        db: Database,
        hasher: KeyedHasher,
        *,
        consume_views: bool,
        schedule_maintenance: bool = True,
        settings: Settings | None = None,
    ) -> None:
        self.db = db
        self.stop_event = threading.Event()
        self.consumer = RedisViewConsumer(db, hasher, settings=settings) if consume_views else None
        self.schedule = MaintenanceSchedule(db) if schedule_maintenance else None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        if self.consumer is not None:
            self._spawn("stich-view-consumer", self.consumer.run)
        if self.schedule is not None:
            self._spawn("stich-maintenance", self._maintenance_loop)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask every loop to finish what it holds (a batch is committed and acknowledged,
        a maintenance batch ends), then wait for them."""
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()
        if self.consumer is not None:
            self.consumer.close()

    def wait(self) -> None:
        """Block until :meth:`stop` is called (from a signal handler, say)."""
        while not self.stop_event.wait(timeout=1.0):
            pass

    def _spawn(self, name: str, target: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=target, args=(self.stop_event,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _maintenance_loop(self, stop: threading.Event) -> None:
        assert self.schedule is not None
        while not stop.is_set():
            self.schedule.run_due()
            stop.wait(timeout=max(self.schedule.seconds_until_due(), 1.0))


class Background:
    """What one API process runs beside its requests: its view queue, and the embedded
    worker when ``STICH_EMBEDDED_WORKER`` asks for it (started and stopped with the app)."""

    def __init__(self, db: Database, hasher: KeyedHasher, settings: Settings) -> None:
        self.view_queue: ViewQueue = view_queue_for(db, hasher, settings)
        embedded = settings.runs_embedded_worker
        consume = embedded and settings.view_queue_url is not None
        self.worker = (
            Worker(db, hasher, consume_views=consume, settings=settings) if embedded else None
        )

    def start(self) -> None:
        self.view_queue.start()
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        """Flush this process's views, then stop the worker's loops."""
        self.view_queue.close()
        if self.worker is not None:
            self.worker.stop()
