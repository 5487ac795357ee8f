"""Where a view-ingest batch's time goes, step by step (docs/benchmarks.md, "View ingest").

    python -m stich.bench.ingest_steps [--batches 30]   # the database of STICH_DATABASE_URL

Runs the steps of ``AnalyticsService.ingest`` by hand on batches of 1,000 new visitors'
views (Zipf-skewed over the public apps, as ``stich bench``'s ``views/batch``) and prints,
per batch, the CPU time of this thread in each step (robust to other processes on the
machine) and the wall time. On SQLite it also counts the pages the batch wrote to the WAL.
It writes real views: use a bench database. It reaches into the service's private
helpers on purpose: it times the service's own steps, not a copy of them.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from stich.analytics.ingest import ViewIngestRepository
from stich.analytics.repository import NewView
from stich.analytics.service import (
    AnalyticsService,
    ViewEvent,
    _breakdown_deltas,
    _daily_deltas,
    _day_of,
)
from stich.analytics.viewer import Viewer
from stich.apps.models import App
from stich.apps.visibility import publicly_visible
from stich.config import load_settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import utcnow

BATCH = 1000


class Steps:
    """CPU (this thread) and wall seconds per named step, summed over batches."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.wall: dict[str, float] = defaultdict(float)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started_cpu, started = time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            self.cpu[name] += time.thread_time() - started_cpu
            self.wall[name] += time.perf_counter() - started

    def report(self, batches: int) -> None:
        for name, cpu in self.cpu.items():
            wall = self.wall[name]
            print(
                f"{name:22} CPU {cpu / batches * 1e3:7.1f} ms   wall {wall / batches * 1e3:7.1f} ms"
            )
        views = BATCH * batches
        by_cpu, by_wall = views / self.cpu["total"], views / self.wall["total"]
        print(f"views/s: {by_cpu:,.0f} by CPU, {by_wall:,.0f} by wall")


def ingest(db: Database, hasher: KeyedHasher, events: list[ViewEvent], steps: Steps) -> None:
    """``AnalyticsService.ingest``'s steps, each timed, in one write transaction."""
    with steps.timed("total"):
        with db.write() as uow:
            service = AnalyticsService(uow.session, hasher)
            with steps.timed("prepare"):
                views = [view for event in events if (view := service.prepare(event))]
            unique: dict[tuple[str, str, int], NewView] = {}
            for view in views:
                unique.setdefault((view.app_id, view.viewer_key, view.window_start), view)
            repo = ViewIngestRepository(uow.session)
            with steps.timed("insert views"):
                new = repo.insert_views(list(unique.values()))
            counted = [unique[key] for key in sorted(new)]
            with steps.timed("insert daily viewers"):
                first = repo.insert_daily_viewers(
                    {(_day_of(v.window_start), v.app_id, v.viewer_key) for v in counted}
                )
            with steps.timed("apps.view_count"):
                repo.add_app_views(Counter(view.app_id for view in counted))
            with steps.timed("daily upsert"):
                repo.add_daily(_daily_deltas(counted, first))
            with steps.timed("breakdowns upsert"):
                repo.add_breakdowns(_breakdown_deltas(counted))
            # The commit happens as the unit of work ends: time from here to after it.
            committing = time.thread_time(), time.perf_counter()
        steps.cpu["commit"] += time.thread_time() - committing[0]
        steps.wall["commit"] += time.perf_counter() - committing[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=30)
    batches = parser.parse_args().batches
    settings = load_settings()
    db = Database(settings)
    hasher = KeyedHasher(settings.server_key_bytes())
    with db.read("fresh") as uow:
        apps = list(uow.session.scalars(select(App.id).where(publicly_visible()).limit(50_000)))
    wal = Path(f"{settings.url.database}-wal") if db.backend == "sqlite" else None
    rng = random.Random(7)  # noqa: S311 - not security
    weights = [1 / (rank + 1) ** 1.1 for rank in range(len(apps))]
    agent = f"Mozilla/5.0 ingest-steps/{os.urandom(4).hex()}"  # new visitors every run
    steps, pages, visitor = Steps(), 0, 0
    for _ in range(batches):
        now, events = utcnow(), []
        for app_id in rng.choices(apps, weights, k=BATCH):
            visitor += 1
            address = f"10.{visitor >> 16 & 255}.{visitor >> 8 & 255}.{visitor & 255}"
            events.append(ViewEvent(app_id, Viewer(client_ip=address, user_agent=agent), now))
        wal_before = wal.stat().st_size if wal and wal.exists() else 0
        ingest(db, hasher, events, steps)
        if wal is not None and wal.exists():
            pages += max(0, wal.stat().st_size - wal_before) // 4096
    steps.report(batches)
    if wal is not None:
        print(f"WAL growth per batch: {pages / batches:,.0f} pages (a checkpoint restarts it)")
    db.dispose()


if __name__ == "__main__":
    main()
