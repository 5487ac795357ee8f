"""search words: one definition of a word on both backends

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 15:30:00.000000

A search word is a run of letters and digits; everything else separates words. SQLite's
FTS5 ``unicode61`` tokenizer already works that way. PostgreSQL's text-search parser does
not: it keeps host names, e-mail addresses, versions, URLs, paths and hyphenated words
as single tokens ("zephyr.io", "x@example.com", "v2.0"), so ``io``, ``example`` or ``0``
found them on SQLite only. ``apps.search_doc`` is rebuilt from the title and description
with every ASCII punctuation character turned into a space first (``translate``, an
immutable function of the text, locale-free), so the parser sees plain words only.

The generated column cannot be altered in place (PostgreSQL 15): it is dropped and added
again with its GIN index, which rewrites ``apps`` under an exclusive lock (about 2 s per
100k apps). SQLite: nothing changes.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FEED_PREDICATE = (
    "visibility = 'public' AND is_archived = false AND deleted_at IS NULL "
    "AND status IN ('ready', 'deployed')"
)
# Python's string.punctuation, as an SQL literal (quote doubled), and as many spaces.
_PUNCTUATION = "'!\"#$%&''()*+,-./:;<=>?@[\\]^_`{|}~'"
_SPACES = "'" + " " * 32 + "'"
_TEXT = "coalesce(title, '') || ' ' || coalesce(description, '')"
_FRAMEWORK = "array_to_tsvector(ARRAY['@fw=' || coalesce(framework, '')])"


def _search_doc(words: str) -> list[str]:
    return [
        "DROP INDEX IF EXISTS ix_apps_search",
        "ALTER TABLE apps DROP COLUMN IF EXISTS search_doc",
        f"""ALTER TABLE apps ADD COLUMN search_doc tsvector GENERATED ALWAYS AS (
            to_tsvector('simple', {words}) || {_FRAMEWORK}
        ) STORED""",
        # fastupdate off, as in 0005: no pending list for every search to scan.
        f"""CREATE INDEX ix_apps_search ON apps USING gin (search_doc)
            WITH (fastupdate = off) WHERE {FEED_PREDICATE}""",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _search_doc(f"translate({_TEXT}, {_PUNCTUATION}, {_SPACES})"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in _search_doc(_TEXT):
            op.execute(statement)
