"""maintenance job runs: the last run of each job and how it ended

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 19:35:00.000000

``maintenance_job_runs``, one row per job: when its last run started and finished, ok or
failed (with the error's type and message), and how many rows it removed or rebuilt. The
audit log keeps only runs that changed something; this answers "did it run?".
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stich.db.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_job_runs",
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("started_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "outcome",
            sa.Enum(
                "ok",
                "failed",
                name="maintenance_run_outcome",
                native_enum=False,
                create_constraint=True,
            ),
            nullable=False,
        ),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_maintenance_job_runs")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_job_runs")
