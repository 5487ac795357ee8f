"""Recording each maintenance job's last run (``maintenance_job_runs``), ok or failed."""

from __future__ import annotations

from datetime import datetime

import structlog

from stich.db import Database
from stich.db.base import utcnow
from stich.maintenance.models import JOB_ERROR_LENGTH, RunOutcome
from stich.maintenance.repository import MaintenanceRepository

log = structlog.get_logger("stich.maintenance")


def record_job_run(
    db: Database, job: str, done: int, started: datetime, error: Exception | None = None
) -> None:
    """The job's last run, ok or failed (its own short transaction)."""
    row = {
        "job": job,
        "started_at": started,
        "finished_at": utcnow(),
        "outcome": RunOutcome.OK if error is None else RunOutcome.FAILED,
        "done": done,
        "error": None if error is None else describe(error),
    }
    try:
        with db.write() as uow:
            MaintenanceRepository(uow.session).record_run(row)
    except Exception:  # the record is a convenience: never hide the job's own outcome
        log.exception("could not record the maintenance job's run", job=job)


def describe(error: Exception) -> str:
    """``Type: first line of the message``, short (SQL errors carry their statement)."""
    message = str(error).strip()
    first = message.splitlines()[0] if message else ""
    text = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return text[:JOB_ERROR_LENGTH]
