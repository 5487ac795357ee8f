"""Every maintenance job's last run is recorded, whatever it did and however it ended, and
the Studio dashboard shows it: "did maintenance run?" has an answer even when a run found
nothing to remove (no audit entry) or failed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from stich.config import Settings
from stich.db import Database
from stich.maintenance.jobs import JOB_NAMES, JOBS, run_maintenance
from stich.maintenance.models import RunOutcome
from stich.maintenance.repository import MaintenanceRepository
from tests import studio_support
from tests.ops_support import Account

# The shared fixtures (tests/studio_support.py): the Studio enabled, an admin signed in.
settings = studio_support.settings
admin = studio_support.admin


def _job_row(page: str, job: str) -> str:
    return page.split(f'<tr data-job="{job}">', 1)[1].split("</tr>", 1)[0]


def test_every_job_run_is_recorded_even_when_it_did_nothing(
    client: TestClient, db: Database, settings: Settings, admin: Account
) -> None:
    run_maintenance(db, settings)
    with db.read() as uow:
        runs = MaintenanceRepository(uow.session).last_runs()
    assert set(runs) == set(JOB_NAMES)
    assert all(run.outcome is RunOutcome.OK and run.error is None for run in runs.values())
    assert runs["sessions"].done == 0  # nothing to remove: still a run

    row = _job_row(client.get("/admin/").text, "sessions")
    assert 'data-outcome="ok"' in row and "never" not in row


class _Broken:
    """A job whose batches fail (a database error, say)."""

    def __init__(self, job: object) -> None:
        self._job = job

    def __getattr__(self, name: str) -> object:
        return getattr(self._job, name)

    def run_batch(self, *_args: object) -> int:
        raise RuntimeError("disk I/O error\nSQL: DELETE FROM sessions WHERE secret = 'x'")


def test_a_failed_job_is_recorded_as_failed_with_its_error(
    client: TestClient, db: Database, settings: Settings, admin: Account
) -> None:
    sessions = next(job for job in JOBS if job.name == "sessions")
    with pytest.raises(RuntimeError):
        run_maintenance(db, settings, jobs=[_Broken(sessions)])  # type: ignore[list-item]
    with db.read() as uow:
        run = MaintenanceRepository(uow.session).last_runs()["sessions"]
    assert run.outcome is RunOutcome.FAILED
    # The error's type and first line only: never the statement or its values.
    assert run.error == "RuntimeError: disk I/O error"

    row = _job_row(client.get("/admin/").text, "sessions")
    assert 'data-outcome="failed"' in row and "disk I/O error" in row

    # The next good run replaces it.
    run_maintenance(db, settings, jobs=[sessions])
    with db.read() as uow:
        assert MaintenanceRepository(uow.session).last_runs()["sessions"].outcome is RunOutcome.OK


def test_a_dry_run_records_nothing(db: Database, settings: Settings) -> None:
    run_maintenance(db, settings, dry_run=True)
    with db.read() as uow:
        assert MaintenanceRepository(uow.session).last_runs() == {}
