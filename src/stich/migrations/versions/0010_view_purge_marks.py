"""view purge marks: how far the view purge has gone, so verify is exact everywhere else

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 19:30:00.000000

``view_purge_marks`` holds one row, ``purged_before``: raw views of earlier days may have
been purged (after being rolled up), so a recount only raises those days' rollups. With no
row, no view was ever purged and every day's rollups must equal the recount exactly.

A database purged before this revision has no record of it. Its raw views stop at the
oldest remaining day; when rollups reach further back than that (history the purge left),
the mark is set to that day, as the recount assumed until now. Otherwise there is no mark.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The oldest raw view's UTC day (windows divide a day), or NULL without views.
_OLDEST_VIEW_DAY = {
    "sqlite": "(SELECT date(min(window_start), 'unixepoch') FROM app_views)",
    "postgresql": (
        "(SELECT (to_timestamp(min(window_start)) AT TIME ZONE 'UTC')::date FROM app_views)"
    ),
}
_DAY_AFTER_ROLLUPS = {
    "sqlite": "(SELECT date(max(day), '+1 day') FROM app_daily_stats)",
    "postgresql": "(SELECT max(day) + 1 FROM app_daily_stats)",
}


def upgrade() -> None:
    op.create_table(
        "view_purge_marks",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("purged_before", sa.Date(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_view_purge_marks_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_view_purge_marks")),
    )
    dialect = op.get_bind().dialect.name
    boundary = f"coalesce({_OLDEST_VIEW_DAY[dialect]}, {_DAY_AFTER_ROLLUPS[dialect]})"
    op.execute(
        "INSERT INTO view_purge_marks (id, purged_before) "  # noqa: S608 - constants above
        f"SELECT 1, {boundary} WHERE EXISTS "
        f"(SELECT 1 FROM app_daily_stats WHERE day < {boundary})"
    )


def downgrade() -> None:
    op.drop_table("view_purge_marks")
