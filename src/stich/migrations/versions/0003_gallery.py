"""gallery: full-text search, maintained feed counts, analytics breakdown rollups

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:00:00.000000

Besides the tables and indexes the models declare, this installs what the models cannot
express (and what autogenerate is told to ignore, see ``migrations/env.py``):

- SQLite: ``apps_fts``, an FTS5 external-content table over ``apps(title, description)``
  kept in sync by triggers on insert, update and delete. PostgreSQL: a GIN index on the
  ``to_tsvector('simple', ...)`` expression, restricted to the feed predicate.
- Both: triggers on ``apps`` that keep ``gallery_feed_counts`` (the feed's totals) right
  whenever an app enters or leaves the feed, whoever changes it.

Caution for later migrations: a SQLite batch migration that recreates ``apps`` drops
these triggers and renumbers rowids; it must recreate them and rebuild ``apps_fts``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _listed(row: str) -> str:
    """The feed predicate (apps.models.FEED_PREDICATE) for the OLD or NEW row of a trigger."""
    return (
        f"({row}.visibility = 'public' AND {row}.is_archived = false "
        f"AND {row}.deleted_at IS NULL AND {row}.status IN ('ready', 'deployed'))"
    )


FEED_PREDICATE = (
    "visibility = 'public' AND is_archived = false AND deleted_at IS NULL "
    "AND status IN ('ready', 'deployed')"
)

# --- SQLite ---------------------------------------------------------------------------

_SQLITE_BUMP = """
    INSERT INTO gallery_feed_counts (scope, app_count)
        SELECT {scope}, {delta} WHERE {condition}
        ON CONFLICT (scope) DO UPDATE SET app_count = app_count + {delta};"""


def _sqlite_bump(row: str, delta: int) -> str:
    all_apps = _SQLITE_BUMP.format(scope="'all'", delta=delta, condition=_listed(row))
    framework = _SQLITE_BUMP.format(
        scope=f"'framework:' || {row}.framework",
        delta=delta,
        condition=f"{_listed(row)} AND {row}.framework IS NOT NULL",
    )
    return all_apps + framework


SQLITE_UPGRADE = [
    """CREATE VIRTUAL TABLE apps_fts USING fts5(
        title, description, content='apps', tokenize='unicode61 remove_diacritics 0'
    )""",
    """CREATE TRIGGER apps_fts_insert AFTER INSERT ON apps BEGIN
        INSERT INTO apps_fts (rowid, title, description)
            VALUES (NEW.rowid, NEW.title, NEW.description);
    END""",
    """CREATE TRIGGER apps_fts_delete AFTER DELETE ON apps BEGIN
        INSERT INTO apps_fts (apps_fts, rowid, title, description)
            VALUES ('delete', OLD.rowid, OLD.title, OLD.description);
    END""",
    """CREATE TRIGGER apps_fts_update AFTER UPDATE OF title, description ON apps BEGIN
        INSERT INTO apps_fts (apps_fts, rowid, title, description)
            VALUES ('delete', OLD.rowid, OLD.title, OLD.description);
        INSERT INTO apps_fts (rowid, title, description)
            VALUES (NEW.rowid, NEW.title, NEW.description);
    END""",
    "INSERT INTO apps_fts (apps_fts) VALUES ('rebuild')",
    f"""CREATE TRIGGER apps_feed_count_insert AFTER INSERT ON apps
    WHEN {_listed("NEW")} BEGIN {_sqlite_bump("NEW", 1)}
    END""",
    f"""CREATE TRIGGER apps_feed_count_delete AFTER DELETE ON apps
    WHEN {_listed("OLD")} BEGIN {_sqlite_bump("OLD", -1)}
    END""",
    f"""CREATE TRIGGER apps_feed_count_update
    AFTER UPDATE OF visibility, is_archived, deleted_at, status, framework ON apps
    WHEN {_listed("OLD")} IS NOT {_listed("NEW")} OR OLD.framework IS NOT NEW.framework
    BEGIN {_sqlite_bump("OLD", -1)} {_sqlite_bump("NEW", 1)}
    END""",
]

SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS apps_feed_count_update",
    "DROP TRIGGER IF EXISTS apps_feed_count_delete",
    "DROP TRIGGER IF EXISTS apps_feed_count_insert",
    "DROP TRIGGER IF EXISTS apps_fts_update",
    "DROP TRIGGER IF EXISTS apps_fts_delete",
    "DROP TRIGGER IF EXISTS apps_fts_insert",
    "DROP TABLE IF EXISTS apps_fts",
]

# --- PostgreSQL -----------------------------------------------------------------------

PG_UPGRADE = [
    f"""CREATE INDEX ix_apps_search ON apps USING gin (
        to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(description, ''))
    ) WHERE {FEED_PREDICATE}""",
    """CREATE FUNCTION gallery_feed_count_bump(fw text, delta integer) RETURNS void
    LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO gallery_feed_counts AS c (scope, app_count) VALUES ('all', delta)
            ON CONFLICT (scope) DO UPDATE SET app_count = c.app_count + EXCLUDED.app_count;
        IF fw IS NOT NULL THEN
            INSERT INTO gallery_feed_counts AS c (scope, app_count)
                VALUES ('framework:' || fw, delta)
                ON CONFLICT (scope) DO UPDATE SET app_count = c.app_count + EXCLUDED.app_count;
        END IF;
    END $$""",
    f"""CREATE FUNCTION gallery_feed_count_track() RETURNS trigger
    LANGUAGE plpgsql AS $$
    DECLARE
        was_listed boolean := false;
        is_listed boolean := false;
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            was_listed := {_listed("OLD")};
        END IF;
        IF TG_OP <> 'DELETE' THEN
            is_listed := {_listed("NEW")};
        END IF;
        IF was_listed AND is_listed AND OLD.framework IS NOT DISTINCT FROM NEW.framework THEN
            RETURN NULL;
        END IF;
        IF was_listed THEN
            PERFORM gallery_feed_count_bump(OLD.framework, -1);
        END IF;
        IF is_listed THEN
            PERFORM gallery_feed_count_bump(NEW.framework, 1);
        END IF;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER apps_feed_count
    AFTER INSERT OR DELETE OR UPDATE OF visibility, is_archived, deleted_at, status, framework
    ON apps FOR EACH ROW EXECUTE FUNCTION gallery_feed_count_track()""",
]

PG_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS apps_feed_count ON apps",
    "DROP FUNCTION IF EXISTS gallery_feed_count_track()",
    "DROP FUNCTION IF EXISTS gallery_feed_count_bump(text, integer)",
    "DROP INDEX IF EXISTS ix_apps_search",
]

# Constant SQL (no input reaches it).
FILL_FEED_COUNTS = [
    f"""INSERT INTO gallery_feed_counts (scope, app_count)
        SELECT 'all', count(*) FROM apps WHERE {FEED_PREDICATE}""",  # noqa: S608
    f"""INSERT INTO gallery_feed_counts (scope, app_count)
        SELECT 'framework:' || framework, count(*) FROM apps
        WHERE {FEED_PREDICATE} AND framework IS NOT NULL GROUP BY framework""",  # noqa: S608
]


def upgrade() -> None:
    op.create_table(
        "gallery_feed_counts",
        sa.Column("scope", sa.String(length=60), nullable=False),
        sa.Column("app_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_gallery_feed_counts")),
    )
    op.create_table(
        "app_daily_breakdowns",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "dimension",
            sa.Enum(
                "referrer",
                "device",
                name="breakdown_dimension",
                native_enum=False,
                create_constraint=True,
                length=8,
            ),
            nullable=False,
        ),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_app_daily_breakdowns_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "app_id", "day", "dimension", "value", name=op.f("pk_app_daily_breakdowns")
        ),
    )
    with op.batch_alter_table("app_daily_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_app_daily_stats_day")
        batch_op.create_index(
            "ix_app_daily_stats_day", ["day", "app_id", "stars", "views"], unique=False
        )

    dialect = op.get_bind().dialect.name
    for statement in SQLITE_UPGRADE if dialect == "sqlite" else PG_UPGRADE:
        op.execute(statement)
    for statement in FILL_FEED_COUNTS:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_DOWNGRADE if dialect == "sqlite" else PG_DOWNGRADE:
        op.execute(statement)
    with op.batch_alter_table("app_daily_stats", schema=None) as batch_op:
        batch_op.drop_index("ix_app_daily_stats_day")
        batch_op.create_index("ix_app_daily_stats_day", ["day", "app_id"], unique=False)
    op.drop_table("app_daily_breakdowns")
    op.drop_table("gallery_feed_counts")
