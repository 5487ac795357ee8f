"""The maintenance jobs and how one run goes through them.

Every job is idempotent (it removes what is past a cutoff fixed when the run starts, so a
second run finds nothing) and batched: each batch is one short transaction that deletes
at most ``batch_size`` rows, so live traffic never waits long behind it. The cutoffs:

- credentials, by the identity service's rules (``AuthRepository.purge_targets``, the same
  as ``stich auth cleanup``): sessions past their refresh expiry (revoked ones stay until
  then, so a replayed refresh token is still recognised), OAuth states past expiry, API
  keys revoked or expired more than 30 days ago, idle unlocked sign-in throttles,
  expired email links and mail cooldowns idle for a day.
- soft-deleted apps: deleted longer ago than STICH_APP_RETENTION_DAYS (the apps service's
  purge: stars, favorites, views and rollups go with them, forks are detached, each purge
  is audited).
- audit entries: older than STICH_AUDIT_RETENTION_DAYS.
- raw view events: whole UTC days older than STICH_VIEW_RETENTION_DAYS. First, in one
  transaction, the rollups of those days are raised to every raw view still there
  (``roll_up_views``: views that were never counted, e.g. imported or after a loss of
  rollups, are counted, never dropped), and the run reports how many that was. From then
  on the app counters and daily rollups keep the history; nothing reads old raw events.
  The days' ``app_daily_viewers`` rows go next (their count is in ``unique_viewers``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

import structlog
from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from stich.analytics.history import day_start, first_retained_day, mark_purged
from stich.analytics.models import AppDailyViewer, AppView
from stich.analytics.rebuild import roll_up_views
from stich.apps.service import AppService
from stich.audit.models import AuditLog
from stich.audit.service import AuditService, RequestMeta
from stich.auth.models import (
    ApiKey,
    EmailCooldown,
    EmailToken,
    LoginThrottle,
    OAuthState,
    UserSession,
)
from stich.auth.repository import AuthRepository
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import Invalid
from stich.gallery import rankings
from stich.maintenance.repository import MaintenanceRepository
from stich.maintenance.runs import record_job_run

log = structlog.get_logger("stich.maintenance")

# The defaults of `stich auth cleanup`, whose rules (AuthRepository.purge_targets) these are.
KEY_RETENTION = timedelta(days=30)
THROTTLE_IDLE = timedelta(days=1)


@dataclass(frozen=True)
class Cutoffs:
    """Everything older than these goes; fixed once per run so the run has an end."""

    now: datetime
    apps_deleted_before: datetime
    audit_before: datetime
    views_before: datetime
    rankings_computed_before: datetime

    @classmethod
    def for_settings(cls, settings: Settings, now: datetime) -> Cutoffs:
        return cls(
            now=now,
            apps_deleted_before=now - timedelta(days=settings.app_retention_days),
            audit_before=now - timedelta(days=settings.audit_retention_days),
            # Whole days: a day's raw views are either all there or all rolled up and gone.
            views_before=day_start(first_retained_day(now, settings.view_retention_days)),
            rankings_computed_before=now - timedelta(seconds=settings.feed_ranking_refresh_seconds),
        )


class Outcome(StrEnum):
    """What a job does to the rows it counts: purges remove them, a refresh rebuilds them."""

    REMOVED = "removed"
    REBUILT = "rebuilt"


class Job(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def outcome(self) -> Outcome: ...

    def due(self, session: Session, cutoffs: Cutoffs) -> int:
        """How many rows the job would remove (or rebuild) now."""

    def run_batch(self, session: Session, cutoffs: Cutoffs, limit: int) -> int:
        """Remove (or rebuild) up to ``limit`` rows in the caller's transaction; how many."""


@dataclass(frozen=True)
class DeleteExpired:
    """Delete the rows of one table that a predicate calls expired."""

    name: str
    description: str
    model: type[Any]
    expired: Callable[[Cutoffs], ColumnElement[bool]]
    outcome: Outcome = Outcome.REMOVED

    def due(self, session: Session, cutoffs: Cutoffs) -> int:
        return MaintenanceRepository(session).count(self.model, self.expired(cutoffs))

    def run_batch(self, session: Session, cutoffs: Cutoffs, limit: int) -> int:
        return MaintenanceRepository(session).delete_batch(self.model, self.expired(cutoffs), limit)


@dataclass(frozen=True)
class PurgeViews(DeleteExpired):
    """Raw view events of the days past retention, once their views are rolled up."""

    name: str = "app_views"
    description: str = "Raw view events past retention (rolled up first; rollups keep the history)"
    model: type[Any] = AppView
    # By window start: the views' one index leads with it, and a window is on its view's day.
    expired: Callable[[Cutoffs], ColumnElement[bool]] = lambda c: (
        AppView.window_start < int(c.views_before.timestamp())
    )

    def prepare(self, session: Session, cutoffs: Cutoffs) -> int:
        """Count every raw view about to go into the rollups; how many were not yet."""
        rolled = roll_up_views(session, cutoffs.views_before.date())
        # From now on those days' raw views may be gone: their rollups are history.
        mark_purged(session, cutoffs.views_before.date())
        if rolled.views or rolled.daily_rows or rolled.breakdown_rows:
            log.warning(
                "views rolled up before their purge",
                views=rolled.views,
                daily_rows=rolled.daily_rows,
                breakdown_rows=rolled.breakdown_rows,
                before=str(cutoffs.views_before.date()),
            )
        return rolled.views


@dataclass(frozen=True)
class PurgeDeletedApps:
    """The apps service's purge of apps soft-deleted before the retention cutoff."""

    name: str = "deleted_apps"
    description: str = "Apps deleted longer ago than the retention period"
    outcome: Outcome = Outcome.REMOVED

    def due(self, session: Session, cutoffs: Cutoffs) -> int:
        return AppService(session).count_purgeable(cutoffs.apps_deleted_before)

    def run_batch(self, session: Session, cutoffs: Cutoffs, limit: int) -> int:
        service = AppService(session, RequestMeta.system())
        return service.purge_batch(cutoffs.apps_deleted_before, limit).apps


@dataclass(frozen=True)
class RefreshRankings:
    """Rebuild the snapshots of the windowed feed rankings that are older than the refresh
    interval or from an earlier day (see stich.gallery.rankings). One ranking per
    transaction (up to about a second at a hundred thousand apps), so on SQLite writers
    never queue behind a long rebuild."""

    name: str = "feed_rankings"
    description: str = "Rebuild stale snapshots of the windowed feed rankings"
    outcome: Outcome = Outcome.REBUILT  # not a purge: nothing is removed
    max_batch: int = 1

    def due(self, session: Session, cutoffs: Cutoffs) -> int:
        return len(self._stale(session, cutoffs))

    def run_batch(self, session: Session, cutoffs: Cutoffs, limit: int) -> int:
        names = self._stale(session, cutoffs)[:limit]
        for name in names:
            rankings.refresh(session, name, cutoffs.now)
        return len(names)

    @staticmethod
    def _stale(session: Session, cutoffs: Cutoffs) -> list[str]:
        return rankings.stale_rankings(
            session, cutoffs.now, cutoffs.now - cutoffs.rankings_computed_before
        )


def _credential_rule(model: type[Any]) -> Callable[[Cutoffs], ColumnElement[bool]]:
    """The identity service's own purge rule for ``model`` (as ``stich auth cleanup``)."""

    def expired(cutoffs: Cutoffs) -> ColumnElement[bool]:
        targets = AuthRepository.purge_targets(
            cutoffs.now, key_retention=KEY_RETENTION, throttle_idle=THROTTLE_IDLE
        )
        return next(target.condition for target in targets if target.model is model)

    return expired


JOBS: tuple[Job, ...] = (
    DeleteExpired(
        "sessions",
        "Sessions past their refresh expiry",
        UserSession,
        _credential_rule(UserSession),
    ),
    DeleteExpired(
        "oauth_states",
        "OAuth sign-in states past expiry",
        OAuthState,
        _credential_rule(OAuthState),
    ),
    DeleteExpired(
        "api_keys",
        "API keys revoked or expired over 30 days ago",
        ApiKey,
        _credential_rule(ApiKey),
    ),
    DeleteExpired(
        "login_throttles",
        "Idle sign-in throttles of unknown emails",
        LoginThrottle,
        _credential_rule(LoginThrottle),
    ),
    DeleteExpired(
        "email_tokens",
        "Expired email links (verification, reset, email change)",
        EmailToken,
        _credential_rule(EmailToken),
    ),
    DeleteExpired(
        "email_cooldowns",
        "Mail cooldowns idle for a day",
        EmailCooldown,
        _credential_rule(EmailCooldown),
    ),
    PurgeDeletedApps(),
    DeleteExpired(
        "audit_logs",
        "Audit entries past retention",
        AuditLog,
        lambda c: AuditLog.created_at < c.audit_before,
    ),
    PurgeViews(),
    DeleteExpired(
        "app_daily_viewers",
        "Who viewed an app on a day, for the days past view retention (counted in the rollups)",
        AppDailyViewer,
        lambda c: AppDailyViewer.day < c.views_before.date(),
    ),
    RefreshRankings(),
)
JOB_NAMES = tuple(job.name for job in JOBS)


@dataclass
class JobResult:
    name: str
    description: str
    outcome: Outcome
    due: int
    done: int = 0  # rows removed, or snapshots rebuilt, as ``outcome`` says
    batches: int = 0
    seconds: float = 0.0
    rolled_up: int = 0  # views counted into the rollups before their purge

    def describe(self) -> str:
        rolled = f" ({self.rolled_up} views rolled up first)" if self.rolled_up else ""
        return f"{self.done} {self.outcome}{rolled}"


@dataclass
class MaintenanceRun:
    cutoffs: Cutoffs
    dry_run: bool
    results: list[JobResult] = field(default_factory=list)

    def total(self, outcome: Outcome) -> int:
        return sum(result.done for result in self.results if result.outcome is outcome)

    @property
    def removed(self) -> int:
        return self.total(Outcome.REMOVED)

    @property
    def rebuilt(self) -> int:
        return self.total(Outcome.REBUILT)

    def changes(self) -> dict[str, dict[str, int]]:
        """``{"removed": {job: n}, "rebuilt": {job: n}, "rolled_up": {job: views}}``,
        leaving out what did nothing."""
        changes: dict[str, dict[str, int]] = {}
        for result in self.results:
            if result.done:
                changes.setdefault(result.outcome.value, {})[result.name] = result.done
            if result.rolled_up:
                changes.setdefault("rolled_up", {})[result.name] = result.rolled_up
        return changes


Progress = Callable[[JobResult], None]


def select_jobs(names: Sequence[str] | None) -> list[Job]:
    if not names:
        return list(JOBS)
    unknown = sorted(set(names) - set(JOB_NAMES))
    if unknown:
        raise Invalid(
            f"no maintenance job named {', '.join(unknown)}; jobs: {', '.join(JOB_NAMES)}",
            code="unknown_job",
        )
    return [job for job in JOBS if job.name in names]


def run_maintenance(
    db: Database,
    settings: Settings,
    *,
    jobs: Sequence[Job] | None = None,
    batch_size: int | None = None,
    dry_run: bool = False,
    now: datetime | None = None,
    on_start: Progress | None = None,
    on_progress: Progress | None = None,
) -> MaintenanceRun:
    """Run the jobs in order, each in batches of its own short transactions."""
    run = MaintenanceRun(Cutoffs.for_settings(settings, now or utcnow()), dry_run)
    limit = batch_size or settings.maintenance_batch_size
    for job in jobs if jobs is not None else JOBS:
        with db.read("fresh") as uow:
            due = job.due(uow.session, run.cutoffs)
            result = JobResult(job.name, job.description, job.outcome, due=due)
        run.results.append(result)
        if on_start is not None:
            on_start(result)
        if not dry_run:
            started = utcnow()
            try:
                _run_job(db, job, run.cutoffs, limit, result, on_progress)
            except Exception as exc:
                record_job_run(db, result.name, result.done, started, error=exc)
                raise
            record_job_run(db, result.name, result.done, started)
    if run.changes() and not dry_run:
        _record(db, run)
    return run


def _run_job(
    db: Database,
    job: Job,
    cutoffs: Cutoffs,
    limit: int,
    result: JobResult,
    on_progress: Progress | None,
) -> None:
    started = time.perf_counter()
    limit = min(limit, getattr(job, "max_batch", limit))  # a job may cap its transactions
    prepare = getattr(job, "prepare", None)  # a job may need one step before it removes
    if prepare is not None and result.due:
        with db.write() as uow:
            result.rolled_up = prepare(uow.session, cutoffs)
    while True:
        with db.write() as uow:
            done = job.run_batch(uow.session, cutoffs, limit)
        if done:
            result.done += done
            result.batches += 1
            if on_progress is not None:
                on_progress(result)
        if done < limit:  # the last batch found fewer than it could take: done
            break
    result.seconds = time.perf_counter() - started


def _record(db: Database, run: MaintenanceRun) -> None:
    with db.write() as uow:
        AuditService(uow.session, RequestMeta.system()).record(
            "maintenance.run",
            actor=None,
            resource_type="maintenance",
            new=run.changes(),
        )
