"""The deployment's health as the Studio dashboard shows it.

Each fact comes from where Stich already keeps it: the migration revision as ``/readyz``
reads it, write faults from ``Database.write_health``, replica lag from the replica set's
own health checks (``stich.db.replicas``), maintenance from the ``maintenance.run`` audit
entries the runs leave and from the ranking snapshots' own times, the view-queue backlog
from the queue (``ViewQueue.backlog``).

A maintenance run that found nothing to do leaves no audit entry (by design, see
docs/operations.md), so for the purge jobs the dashboard shows the last run that changed
something; the ``feed_rankings`` job's last run is when its newest snapshot was built.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stich.analytics.queue import ViewQueue
from stich.audit.models import AuditLog
from stich.db import Database, migrate
from stich.gallery import rankings
from stich.gallery.models import FeedRankingSnapshot
from stich.maintenance.jobs import JOBS, Outcome
from stich.maintenance.models import MaintenanceJobRun
from stich.maintenance.repository import MaintenanceRepository

# The maintenance entries looked through for each job's last change (newest first); at the
# default five-minute ranking refresh this is about two days of runs.
MAINTENANCE_ENTRIES = 600
RANKINGS_JOB = "feed_rankings"


@dataclass(frozen=True)
class ReplicaState:
    name: str
    in_use: bool
    reason: str | None
    lag_seconds: float | None
    lag_bytes: int | None
    checked_seconds_ago: float | None  # None: not checked yet


@dataclass(frozen=True)
class JobState:
    name: str
    description: str
    last_change: datetime | None  # the last run that removed or rebuilt something
    done: int  # how many rows it removed (snapshots rebuilt) then
    outcome: Outcome
    note: str | None = None
    late: bool = False  # it should have run by now: is the schedule running?
    last_run: datetime | None = None  # the last run, whatever it did (maintenance_job_runs)
    last_outcome: str | None = None  # "ok" or "failed"
    last_error: str | None = None


@dataclass(frozen=True)
class DeploymentHealth:
    backend: str
    revision: list[str]
    head: list[str]
    write_fault: str | None
    replicas: list[ReplicaState]
    jobs: list[JobState]
    view_backlog: int | None  # None: no queue in this process, or it did not answer
    view_queue: str  # "in-process", "redis" or "not in this process"

    @property
    def at_head(self) -> bool:
        return self.revision == self.head


@lru_cache(maxsize=1)
def _head() -> tuple[str, ...]:
    # Reading the migration scripts takes tens of milliseconds; they do not change.
    return tuple(sorted(migrate.head_revisions()))


def deployment_health(
    session: Session,
    database: Database,
    view_queue: ViewQueue | None,
    now: datetime,
) -> DeploymentHealth:
    """Everything above, read in ``session`` (a read on the primary) and from memory."""
    revision = sorted(MigrationContext.configure(session.connection()).get_current_heads())
    episode = database.write_health.current()
    return DeploymentHealth(
        backend=database.backend,
        revision=revision,
        head=list(_head()),
        write_fault=episode.fault.value if episode is not None else None,
        replicas=replica_states(database),
        jobs=maintenance_jobs(session, now, database.settings.feed_ranking_refresh_seconds),
        view_backlog=view_queue.backlog() if view_queue is not None else None,
        view_queue=_queue_kind(view_queue),
    )


def replica_states(database: Database) -> list[ReplicaState]:
    """Each configured replica as the replica set's last health check saw it."""
    if database.replicas is None:
        return []
    database.replicas.ensure_started()  # a Studio serving alone may not have checked yet
    now = time.monotonic()
    states = []
    for replica in database.replicas.replicas:
        health = replica.health
        states.append(
            ReplicaState(
                name=replica.name,
                in_use=health.usable,
                reason=health.reason,
                lag_seconds=health.lag_seconds,
                lag_bytes=health.lag_bytes,
                checked_seconds_ago=(
                    None if health.checked_at is None else max(0.0, now - health.checked_at)
                ),
            )
        )
    return states


def maintenance_jobs(session: Session, now: datetime, refresh_seconds: int) -> list[JobState]:
    """Every maintenance job with its last recorded change, in the order runs take them.

    The ranking snapshots are rebuilt every ``refresh_seconds``: one missing, or older than
    three intervals, means the schedule is not running (no worker, no cron).
    """
    entries = session.execute(
        select(AuditLog.created_at, AuditLog.new_values)
        .where(AuditLog.action == "maintenance.run")
        .order_by(AuditLog.created_at.desc())
        .limit(MAINTENANCE_ENTRIES)
    ).all()
    last = _last_changes(entries)
    newest, oldest, count = session.execute(
        select(
            func.max(FeedRankingSnapshot.computed_at),
            func.min(FeedRankingSnapshot.computed_at),
            func.count(),
        )
    ).one()
    runs = MaintenanceRepository(session).last_runs()
    states = []
    for job in JOBS:
        at, done = last.get(job.name, (None, 0))
        if job.name != RANKINGS_JOB:
            state = JobState(job.name, job.description, at, done, job.outcome)
            states.append(_with_run(state, runs.get(job.name)))
            continue
        wanted = len(rankings.SCORED_RANKINGS)
        note = f"{count} of {wanted} snapshots"
        if oldest is not None:
            note += f", oldest {ago(now - oldest)} old"
        late = count < wanted or (
            oldest is not None and now - oldest > timedelta(seconds=3 * refresh_seconds)
        )
        at = newest if newest is not None else at
        state = JobState(job.name, job.description, at, done, job.outcome, note, late)
        states.append(_with_run(state, runs.get(job.name)))
    return states


def _with_run(state: JobState, run: MaintenanceJobRun | None) -> JobState:
    if run is None:
        return state
    return replace(
        state, last_run=run.finished_at, last_outcome=run.outcome.value, last_error=run.error
    )


def _last_changes(entries: Sequence[Any]) -> dict[str, tuple[datetime, int]]:
    """Per job, the newest entry's time and count (entries come newest first).

    Runs write ``{"removed": {job: n}, "rebuilt": {job: n}}``; anything else (a row
    written outside Stich) is passed over rather than taking the page down.
    """
    last: dict[str, tuple[datetime, int]] = {}
    for created_at, changes in entries:
        groups = changes.values() if isinstance(changes, dict) else ()
        for per_job in groups:
            if not isinstance(per_job, dict):
                continue
            for name, count in per_job.items():
                if isinstance(count, int) and not isinstance(count, bool):
                    last.setdefault(str(name), (created_at, count))
    return last


def _queue_kind(queue: ViewQueue | None) -> str:
    if queue is None:
        return "not in this process"
    return "redis" if type(queue).__name__ == "RedisViewQueue" else "in-process"


def ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
