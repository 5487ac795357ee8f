"""view ingest keys: app_views keyed by window first, no foreign keys; app_daily_viewers

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 18:10:00.000000

Shapes the views tables for set-based ingest (docs/gallery.md, "Views"):

- ``app_views`` keeps one secondary index, its de-duplication key, now
  ``(window_start, app_id, viewer_key)``: a batch's rows land together at the recent end
  of the index instead of on a random page each. The ``(app_id, viewed_at)`` and
  ``viewed_at`` indexes go (analytics read rollups; retention deletes by window). The
  foreign keys go (the ingest checks the app; purging an app deletes its views), and so
  does ``user_id`` (never read: the keyed viewer hash is what counting needs). Viewer keys
  keep their first 32 hex digits (128 bits), as new ones are written.
- ``app_daily_viewers (day, app_id, viewer_key)``: who viewed an app on a day, so the
  ingest learns who is new for the day by an insert-if-absent. Filled from ``app_views``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stich.db.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEVICES = ("desktop", "mobile", "tablet", "bot", "unknown")
_OLD_UNIQUE = "uq_app_views_app_id_viewer_key_window_start"
_NEW_UNIQUE = "uq_app_views_window_start_app_id_viewer_key"


def _views_table(name: str) -> None:
    """``app_views`` as the model has it, created under ``name`` (SQLite's copy)."""
    op.create_table(
        name,
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("viewer_key", sa.String(length=32), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("referrer_origin", sa.String(length=255), nullable=True),
        sa.Column(
            "device_type",
            sa.Enum(*_DEVICES, name="view_device_type", native_enum=False),
            nullable=False,
        ),
        sa.Column("viewed_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        # Named for the final table (a convention name would carry ``name``).
        sa.CheckConstraint(
            "device_type IN ('desktop', 'mobile', 'tablet', 'bot', 'unknown')",
            name=op.f("ck_app_views_view_device_type"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_views")),
        sa.UniqueConstraint("window_start", "app_id", "viewer_key", name=op.f(_NEW_UNIQUE)),
    )


def _day_of_window(dialect: str) -> str:
    if dialect == "sqlite":
        return "date(window_start, 'unixepoch')"
    return "(to_timestamp(window_start) AT TIME ZONE 'UTC')::date"


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # SQLite cannot drop constraints in place: copy into a table of the new shape.
        _views_table("app_views_next")
        op.execute(
            "INSERT INTO app_views_next (id, app_id, viewer_key, window_start, "
            "referrer_origin, device_type, viewed_at) "
            "SELECT id, app_id, substr(viewer_key, 1, 32), window_start, referrer_origin, "
            "device_type, viewed_at FROM app_views ORDER BY id"
        )
        op.drop_table("app_views")
        op.rename_table("app_views_next", "app_views")
    else:
        op.drop_index("ix_app_views_app_viewed", table_name="app_views")
        op.drop_index("ix_app_views_viewed_at", table_name="app_views")
        op.drop_constraint(op.f(_OLD_UNIQUE), "app_views", type_="unique")
        op.drop_constraint(op.f("fk_app_views_app_id_apps"), "app_views", type_="foreignkey")
        op.drop_constraint(op.f("fk_app_views_user_id_users"), "app_views", type_="foreignkey")
        op.drop_column("app_views", "user_id")
        op.alter_column(
            "app_views",
            "viewer_key",
            type_=sa.String(length=32),
            existing_type=sa.String(length=64),
            existing_nullable=False,
            postgresql_using="substr(viewer_key, 1, 32)",
        )
        op.create_unique_constraint(
            op.f(_NEW_UNIQUE), "app_views", ["window_start", "app_id", "viewer_key"]
        )

    op.create_table(
        "app_daily_viewers",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("viewer_key", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("day", "app_id", "viewer_key", name=op.f("pk_app_daily_viewers")),
        sqlite_with_rowid=False,
    )
    day = _day_of_window(dialect)  # a constant expression of this module
    op.execute(
        "INSERT INTO app_daily_viewers (day, app_id, viewer_key) "  # noqa: S608
        f"SELECT DISTINCT {day}, app_id, viewer_key FROM app_views"
    )


def downgrade() -> None:
    op.drop_table("app_daily_viewers")
    with op.batch_alter_table("app_views", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(_NEW_UNIQUE), type_="unique")
        batch_op.alter_column(
            "viewer_key", type_=sa.String(length=64), existing_type=sa.String(length=32)
        )
        batch_op.add_column(sa.Column("user_id", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_app_views_app_id_apps"), "apps", ["app_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            op.f("fk_app_views_user_id_users"), "users", ["user_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_unique_constraint(
            op.f(_OLD_UNIQUE), ["app_id", "viewer_key", "window_start"]
        )
        batch_op.create_index("ix_app_views_app_viewed", ["app_id", "viewed_at"], unique=False)
        batch_op.create_index("ix_app_views_viewed_at", ["viewed_at"], unique=False)
