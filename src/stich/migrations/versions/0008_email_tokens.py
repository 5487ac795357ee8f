"""email tokens: single-use verification, reset and email-change links; send cooldowns

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:10:00.000000

``email_tokens`` holds each link's keyed hash (never the token), its purpose, account,
address, expiry and when it was used. ``email_cooldowns`` records when a mail of a
purpose last went to an address (by the address's keyed hash).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stich.db.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PURPOSES = ("verify_email", "reset_password", "change_email")


def _purpose(name: str) -> sa.Enum:
    return sa.Enum(*_PURPOSES, name=name, native_enum=False, create_constraint=True)


def upgrade() -> None:
    op.create_table(
        "email_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("purpose", _purpose("email_token_purpose"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("expires_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", stich.db.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_email_tokens_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_tokens_token_hash")),
    )
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_tokens_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            "ix_email_tokens_user_id_purpose", ["user_id", "purpose"], unique=False
        )

    op.create_table(
        "email_cooldowns",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("last_sent_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_hash", name=op.f("pk_email_cooldowns")),
    )
    with op.batch_alter_table("email_cooldowns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_cooldowns_last_sent_at"), ["last_sent_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_cooldowns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_cooldowns_last_sent_at"))
    op.drop_table("email_cooldowns")
    with op.batch_alter_table("email_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_email_tokens_user_id_purpose")
        batch_op.drop_index(batch_op.f("ix_email_tokens_expires_at"))
    op.drop_table("email_tokens")
