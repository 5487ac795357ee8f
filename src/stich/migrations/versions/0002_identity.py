"""identity: issued anonymous owners, sign-in throttles for unknown emails

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 15:17:55.335881
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stich.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_throttles",
        sa.Column("email_hash", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("locked_until", stich.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("email_hash", name=op.f("pk_login_throttles")),
    )
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_throttles_updated_at"), ["updated_at"], unique=False
        )

    op.create_table(
        "anonymous_owners",
        sa.Column("owner_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_at", stich.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claimed_by_user_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["claimed_by_user_id"],
            ["users.id"],
            name=op.f("fk_anonymous_owners_claimed_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("owner_hash", name=op.f("pk_anonymous_owners")),
    )


def downgrade() -> None:
    op.drop_table("anonymous_owners")
    with op.batch_alter_table("login_throttles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_throttles_updated_at"))
    op.drop_table("login_throttles")
