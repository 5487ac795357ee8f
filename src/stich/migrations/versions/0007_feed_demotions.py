"""feed demotions: when an app's place in a feed sort last went down

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 15:40:00.000000

``feed_demotions(app_id, demoted_at)``, one row per app, upserted by triggers whenever
``apps.star_count`` / ``apps.view_count`` or a rollup's ``app_daily_stats.stars`` /
``views`` goes down (a star taken back, a recount, any SQL). A feed walk's later pages
skip apps demoted since the walk began, so no walk lists an app twice.

The time is the database's clock at the trigger (``clock_timestamp()``; SQLite's
``'now'``), in each backend's storage format for ``UTCDateTime``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stich.db.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_APPS_LOWERED = "NEW.star_count < OLD.star_count OR NEW.view_count < OLD.view_count"
_STATS_LOWERED = "NEW.stars < OLD.stars OR NEW.views < OLD.views"

# SQLite stores UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC); %f is SS.SSS.
_SQLITE_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"


def _sqlite_demote(app_id: str) -> str:
    """The upsert stamping ``app_id`` (a trigger's NEW.column): constant SQL."""
    return f"""INSERT INTO feed_demotions (app_id, demoted_at) VALUES ({app_id}, {_SQLITE_NOW})
        ON CONFLICT (app_id) DO UPDATE SET demoted_at = excluded.demoted_at;"""  # noqa: S608


SQLITE_UPGRADE = [
    f"""CREATE TRIGGER apps_feed_demotion AFTER UPDATE OF star_count, view_count ON apps
    WHEN {_APPS_LOWERED} BEGIN {_sqlite_demote("NEW.id")} END""",
    f"""CREATE TRIGGER app_daily_stats_feed_demotion
    AFTER UPDATE OF stars, views ON app_daily_stats
    WHEN {_STATS_LOWERED} BEGIN {_sqlite_demote("NEW.app_id")} END""",
]
SQLITE_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS app_daily_stats_feed_demotion",
    "DROP TRIGGER IF EXISTS apps_feed_demotion",
]

PG_UPGRADE = [
    """CREATE FUNCTION feed_demote(demoted text) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO feed_demotions (app_id, demoted_at) VALUES (demoted, clock_timestamp())
            ON CONFLICT (app_id) DO UPDATE SET demoted_at = EXCLUDED.demoted_at;
    END $$""",
    """CREATE FUNCTION apps_feed_demotion() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM feed_demote(NEW.id);
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION app_daily_stats_feed_demotion() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM feed_demote(NEW.app_id);
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER apps_feed_demotion AFTER UPDATE OF star_count, view_count ON apps
    FOR EACH ROW WHEN ({_APPS_LOWERED}) EXECUTE FUNCTION apps_feed_demotion()""",
    f"""CREATE TRIGGER app_daily_stats_feed_demotion AFTER UPDATE OF stars, views
    ON app_daily_stats FOR EACH ROW WHEN ({_STATS_LOWERED})
    EXECUTE FUNCTION app_daily_stats_feed_demotion()""",
]
PG_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS app_daily_stats_feed_demotion ON app_daily_stats",
    "DROP TRIGGER IF EXISTS apps_feed_demotion ON apps",
    "DROP FUNCTION IF EXISTS app_daily_stats_feed_demotion()",
    "DROP FUNCTION IF EXISTS apps_feed_demotion()",
    "DROP FUNCTION IF EXISTS feed_demote(text)",
]


def upgrade() -> None:
    op.create_table(
        "feed_demotions",
        sa.Column("app_id", sa.String(length=36), nullable=False),
        sa.Column("demoted_at", stich.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
            name=op.f("fk_feed_demotions_app_id_apps"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_feed_demotions")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_UPGRADE if sqlite else PG_UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_DOWNGRADE if sqlite else PG_DOWNGRADE:
        op.execute(statement)
    op.drop_table("feed_demotions")
