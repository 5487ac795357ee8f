"""The SQL of maintenance: bounded deletes that never hold locks for long, and each job's
last run (``maintenance_job_runs``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, CursorResult, delete, func, select, tuple_
from sqlalchemy.orm import Session

from stich.analytics.sql import insert_for
from stich.maintenance.models import MaintenanceJobRun


class MaintenanceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def count(self, model: type[Any], condition: ColumnElement[bool]) -> int:
        return self.session.scalar(select(func.count()).select_from(model).where(condition)) or 0

    def delete_batch(self, model: type[Any], condition: ColumnElement[bool], limit: int) -> int:
        """``DELETE ... WHERE key IN (SELECT key ... WHERE condition LIMIT n)``; how many went.

        On PostgreSQL the inner select skips rows a concurrent transaction has locked
        (``FOR UPDATE SKIP LOCKED``): maintenance never waits on live traffic, and two runs
        at once share the work instead of queueing. A skipped row goes on a later run.
        """
        keys = model.__mapper__.primary_key
        # A composite key is matched as a row value: (a, b) IN (SELECT a, b ...).
        key = keys[0] if len(keys) == 1 else tuple_(*keys)
        doomed = select(*keys).where(condition).limit(limit).with_for_update(skip_locked=True)
        result = self.session.execute(
            delete(model).where(key.in_(doomed)).execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return int(result.rowcount)

    def record_run(self, row: dict[str, Any]) -> None:
        """Upsert a job's last run (one row per job, overwritten)."""
        stmt = insert_for(self.session, MaintenanceJobRun).values(row)
        update = {key: stmt.excluded[key] for key in row if key != "job"}
        self.session.execute(stmt.on_conflict_do_update(index_elements=["job"], set_=update))

    def last_runs(self) -> dict[str, MaintenanceJobRun]:
        """Each job's last recorded run, by job name."""
        return {run.job: run for run in self.session.scalars(select(MaintenanceJobRun))}
