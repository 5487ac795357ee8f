"""feed search: a full-text index of the feed alone, with the framework as a token;
rankings by framework

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 18:40:00.000000

Search only ever serves the public feed, so its index holds only apps in the feed and
counts of matches are exact index lookups, with no join back to ``apps``.

- SQLite: ``apps_fts`` becomes an FTS5 external-content table over the view
  ``apps_fts_source`` (the feed's apps: rowid, title, description and a framework
  token), maintained by triggers that add an app when it enters the feed and remove it
  when it leaves or changes. FTS5's ``integrity-check`` and ``rebuild`` work against the
  view, so ``stich db verify`` checks and repairs it as before.
- The framework is indexed as the single token ``fw`` + hex(framework): matching that
  token is an exact framework match (plain words could not tell "next" from "next.js").
- PostgreSQL: ``apps.search_doc``, a stored generated ``tsvector`` of the title and
  description plus the lexeme ``@fw=<framework>`` (a search word, letters and digits
  only, can never match it), with the GIN index ``ix_apps_search`` over the feed's rows
  replacing 0003's expression index. Stored, so that a page walking a sort's index can
  test each row's match without re-parsing its text. Adding the column rewrites
  ``apps`` under an exclusive lock (about 2 s per 100k apps).

Both: ``feed_rankings.framework`` (the app's framework when ranked, backfilled here) and
``ix_feed_rankings_fw_walk``, so a windowed listing filtered by framework walks only
that framework's entries.

Caution for later migrations, as in 0003: a SQLite batch migration that recreates
``apps`` drops these triggers and renumbers rowids; recreate them and rebuild.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
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


def _fts_add(row: str) -> str:
    return f"""INSERT INTO apps_fts (rowid, title, description, framework_token)
        SELECT {row}.rowid, {row}.title, {row}.description, 'fw' || lower(hex({row}.framework))
        WHERE {_listed(row)};"""


def _fts_remove(row: str) -> str:
    return f"""INSERT INTO apps_fts (apps_fts, rowid, title, description, framework_token)
        SELECT 'delete', {row}.rowid, {row}.title, {row}.description,
               'fw' || lower(hex({row}.framework))
        WHERE {_listed(row)};"""


_SQLITE_DROP_0003 = [
    "DROP TRIGGER IF EXISTS apps_fts_update",
    "DROP TRIGGER IF EXISTS apps_fts_delete",
    "DROP TRIGGER IF EXISTS apps_fts_insert",
    "DROP TABLE IF EXISTS apps_fts",
]

_SEARCHED_COLUMNS = "title, description, framework, visibility, is_archived, deleted_at, status"

SQLITE_UPGRADE = [
    *_SQLITE_DROP_0003,
    f"""CREATE VIEW apps_fts_source AS
        SELECT rowid AS app_rowid, title, description,
               'fw' || lower(hex(framework)) AS framework_token
        FROM apps WHERE {FEED_PREDICATE}""",  # noqa: S608 (constant SQL)
    """CREATE VIRTUAL TABLE apps_fts USING fts5(
        title, description, framework_token,
        content='apps_fts_source', content_rowid='app_rowid',
        tokenize='unicode61 remove_diacritics 0'
    )""",
    f"""CREATE TRIGGER apps_fts_insert AFTER INSERT ON apps BEGIN
        {_fts_add("NEW")}
    END""",
    f"""CREATE TRIGGER apps_fts_delete AFTER DELETE ON apps BEGIN
        {_fts_remove("OLD")}
    END""",
    # One trigger, so the old entry always goes before the new one comes.
    f"""CREATE TRIGGER apps_fts_update AFTER UPDATE OF {_SEARCHED_COLUMNS} ON apps
    WHEN {_listed("OLD")} OR {_listed("NEW")} BEGIN
        {_fts_remove("OLD")}
        {_fts_add("NEW")}
    END""",
    "INSERT INTO apps_fts (apps_fts) VALUES ('rebuild')",
]

SQLITE_DOWNGRADE = [
    *_SQLITE_DROP_0003,
    "DROP VIEW IF EXISTS apps_fts_source",
    # 0003's index of every app's title and description
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
]


# --- PostgreSQL -----------------------------------------------------------------------

PG_UPGRADE = [
    """ALTER TABLE apps ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(description, ''))
        || array_to_tsvector(ARRAY['@fw=' || coalesce(framework, '')])
    ) STORED""",
    "DROP INDEX IF EXISTS ix_apps_search",
    # fastupdate off: with it, changed rows wait in a pending list that every search
    # scans until a vacuum merges it (measured: searches twice as slow after a day of
    # view counting); off, each change pays its index insert at once.
    f"""CREATE INDEX ix_apps_search ON apps USING gin (search_doc)
        WITH (fastupdate = off) WHERE {FEED_PREDICATE}""",
]

PG_DOWNGRADE = [
    "DROP INDEX IF EXISTS ix_apps_search",
    "ALTER TABLE apps DROP COLUMN IF EXISTS search_doc",
    f"""CREATE INDEX ix_apps_search ON apps USING gin (
        to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(description, ''))
    ) WHERE {FEED_PREDICATE}""",
]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_UPGRADE if sqlite else PG_UPGRADE:
        op.execute(statement)
    op.add_column("feed_rankings", sa.Column("framework", sa.String(length=40), nullable=True))
    op.execute(
        "UPDATE feed_rankings SET framework = "
        "(SELECT apps.framework FROM apps WHERE apps.id = feed_rankings.app_id)"
    )
    op.create_index(
        "ix_feed_rankings_fw_walk",
        "feed_rankings",
        ["ranking", "generation", "framework", "score", "created_at", "app_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_feed_rankings_fw_walk", table_name="feed_rankings")
    with op.batch_alter_table("feed_rankings") as batch_op:
        batch_op.drop_column("framework")
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_DOWNGRADE if sqlite else PG_DOWNGRADE:
        op.execute(statement)
