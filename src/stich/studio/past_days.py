"""The dashboard's per-day series before today, read at most once per interval.

Summing a quarter of rollups is the one costly read of the dashboard (0.1 to 0.4 s at the
medium bench size); days before today change rarely (a view queued just before midnight,
a purge, a deleted account's stars), so the dashboard reads them once, then again in the
background when they are older than ``seconds`` (the page meanwhile shows the kept ones),
and reads today on every request. Only the first look of a process, and the first after
UTC midnight, wait for the whole read. Always the longest period, so switching periods
costs nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, timedelta

import structlog

from stich.db import Database
from stich.studio.activity import ActivityService, DailyActivity, DashboardPeriod

LONGEST = max(DashboardPeriod, key=lambda period: period.days)
log = structlog.get_logger("stich.studio")


class PastDays:
    def __init__(
        self, database: Database, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.database = database
        self.seconds = seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[float, DailyActivity] | None = None
        self._refresh: threading.Thread | None = None

    def before(self, today: date, activity: ActivityService) -> DailyActivity:
        """The ``LONGEST`` days up to yesterday; ``activity`` reads them when none are kept."""
        start, end = today - timedelta(days=LONGEST.days - 1), today - timedelta(days=1)
        with self._lock:  # one reader computes; the others wait for its answer
            kept = self._kept
            if kept is None or kept[1].end != end:
                fresh = activity.daily(start, end)
                self._kept = (self.clock(), fresh)
                return fresh
            if self.clock() - kept[0] >= self.seconds and self._refresh is None:
                self._refresh = threading.Thread(
                    target=self._read_again,
                    args=(start, end),
                    name="stich-studio-days",
                    daemon=True,  # a read: nothing is lost if the process exits first
                )
                self._refresh.start()
            return kept[1]

    def join(self, timeout: float | None = None) -> None:
        """Wait for a background read in progress (tests, shutdown)."""
        thread = self._refresh
        if thread is not None:
            thread.join(timeout)

    def _read_again(self, start: date, end: date) -> None:
        try:
            with self.database.read("fresh") as uow:
                fresh = ActivityService(uow.session).daily(start, end)
            with self._lock:
                kept = self._kept
                if kept is None or kept[1].end == end:  # not overtaken by a new day
                    self._kept = (self.clock(), fresh)
        except Exception:  # the kept days stay; the next request tries again
            log.exception("dashboard: reading the past days failed")
        finally:
            with self._lock:
                self._refresh = None
