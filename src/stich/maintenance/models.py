"""The last run of each maintenance job, whatever it did: when, and how it ended.

The audit log records runs that changed something (``maintenance.run``); this table also
answers "did maintenance run, and did it fail?" for runs that found nothing to do or
stopped on an error (the Studio dashboard shows it). One row per job, overwritten.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from stich.db.base import Base, UTCDateTime, enum_column

JOB_ERROR_LENGTH = 300


class RunOutcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


class MaintenanceJobRun(Base):
    __tablename__ = "maintenance_job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    outcome: Mapped[RunOutcome] = mapped_column(
        enum_column(RunOutcome, "maintenance_run_outcome"), nullable=False
    )
    done: Mapped[int] = mapped_column(Integer, nullable=False)  # rows removed / rebuilt
    # The error's type and first words (never parameters): what an operator needs first.
    error: Mapped[str | None] = mapped_column(String(JOB_ERROR_LENGTH))
