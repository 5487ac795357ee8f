"""Full-text search over the feed's app titles and descriptions, on both backends.

Search serves the public feed only, so both indexes hold only the feed's apps (migration
0005): SQLite's ``apps_fts`` is an FTS5 table over the view ``apps_fts_source``, kept in
sync by triggers; PostgreSQL matches the stored ``tsvector`` column ``apps.search_doc``
against the GIN index ``ix_apps_search`` restricted to the feed predicate. Both index
the framework as a word of its own, so a search with a framework filter is one index
lookup. All of it is invisible to the models, so autogenerate is told to ignore it
(:func:`is_unmanaged`, used by ``migrations/env.py``).

A search string is reduced to at most eight words of letters and digits; every word must
match, as a prefix ("reac" finds "React"). The indexed text is cut into words the same way
on both backends: FTS5's ``unicode61`` does it by itself; on PostgreSQL ``search_doc`` turns
ASCII punctuation into spaces before parsing (migration 0006), so "zephyr.io" is the words
"zephyr" and "io", not one host-name token. No user text ever reaches the FTS5 or tsquery
syntax: the words are quoted (SQLite) or bound into a query of plain lexemes
(PostgreSQL), so operators, quotes and parentheses in the input mean nothing.
"""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import ColumnElement, String, TextClause, bindparam, literal_column, text

from stich.errors import InvalidInput

FTS_TABLE = "apps_fts"
SEARCH_INDEX = "ix_apps_search"
SEARCH_COLUMN = "search_doc"
MAX_TERMS = 8
MAX_QUERY_LENGTH = 200

# Letters and digits; '_' separates words, as in both tokenizers.
_WORD = re.compile(r"[^\W_]+")


def is_unmanaged(name: str | None) -> bool:
    """Schema objects migrations 0003 and 0005 create by hand; autogenerate must not
    compare them."""
    return name is not None and (
        name in (SEARCH_INDEX, SEARCH_COLUMN) or name.startswith(FTS_TABLE)
    )


def search_terms(query: str) -> list[str]:
    """The words of a search string, lower-cased; 422 when there are none."""
    terms = [word.lower() for word in _WORD.findall(query[:MAX_QUERY_LENGTH])][:MAX_TERMS]
    if not terms:
        raise InvalidInput("q must contain at least one letter or digit", code="invalid_search")
    return terms


def terms_digest(terms: list[str]) -> str:
    """A short fingerprint of a search, so a cursor cannot be replayed on another one."""
    return hashlib.sha256(" ".join(terms).encode()).hexdigest()[:12]


# The bound parameters carrying a search's words (and, on PostgreSQL, its framework).
PARAMETER = "search_query"
FRAMEWORK_PARAMETER = "search_framework"


def match_clause(
    dialect: str, value: str | None = None, *, framework: bool = False, walk: bool = False
) -> ColumnElement[bool] | TextClause:
    """A WHERE clause over ``apps`` true for apps whose title or description has every
    word of the parameter :data:`PARAMETER`: ``value`` (made by :func:`match_value`), or
    supplied at execution. Constant SQL: the user's words travel only in parameters.

    On PostgreSQL ``framework`` adds the framework's lexeme (:data:`FRAMEWORK_PARAMETER`,
    see :func:`pg_framework_query`) to the match, and ``walk`` writes the match as a
    function call the GIN index cannot serve, so the planner walks the sort's index and
    tests each row's stored ``search_doc`` (a dense search); otherwise ``@@`` lets it
    start from the GIN index (a sparse one). On SQLite the framework travels inside the
    FTS query and the plan is chosen with INDEXED BY (see ``stich.gallery.statements``).
    """
    if dialect == "sqlite":
        return literal_column("apps.rowid").in_(
            text(
                f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :{PARAMETER}"  # noqa: S608
            ).bindparams(bindparam(PARAMETER, value, type_=String))
        )
    query = f"to_tsquery('simple', :{PARAMETER})"
    if framework:
        query = f"({query} && CAST(:{FRAMEWORK_PARAMETER} AS tsquery))"
    clause = (
        f"ts_match_vq(apps.{SEARCH_COLUMN}, {query})"
        if walk
        else f"apps.{SEARCH_COLUMN} @@ {query}"
    )
    return text(clause).bindparams(bindparam(PARAMETER, value, type_=String))


def match_value(terms: list[str], dialect: str, framework: str | None = None) -> str:
    """The full-text query for ``terms``: each word quoted, matched as a prefix of a word
    of the title or description. On SQLite a ``framework`` is matched in the index too
    (its exact token, see migration 0005), so a count of matches needs nothing else."""
    if dialect == "sqlite":
        words = "{title description} : (" + " ".join(f'"{term}"*' for term in terms) + ")"
        if framework is None:
            return words
        return f'framework_token : "{framework_token(framework)}" AND {words}'
    return " & ".join(f"{term}:*" for term in terms)


def framework_token(framework: str) -> str:
    """The one word SQLite's index holds for a framework: ``fw`` + its UTF-8 in hex,
    exactly as the migration's ``'fw' || lower(hex(framework))``."""
    return "fw" + framework.encode().hex()


def pg_framework_query(framework: str) -> str:
    """A tsquery (text) matching PostgreSQL's framework lexeme ``@fw=<framework>`` exactly:
    quoted, so it is not parsed into words, with quotes and backslashes doubled."""
    lexeme = f"@fw={framework}".replace("\\", "\\\\").replace("'", "''")
    return f"'{lexeme}'"


def matches(
    terms: list[str], dialect: str, framework: str | None = None
) -> ColumnElement[bool] | TextClause:
    """:func:`match_clause` with the words of ``terms`` (and ``framework``) bound."""
    clause = match_clause(
        dialect, match_value(terms, dialect, framework), framework=framework is not None
    )
    if dialect != "sqlite" and framework is not None and isinstance(clause, TextClause):
        clause = clause.bindparams(
            bindparam(FRAMEWORK_PARAMETER, pg_framework_query(framework), type_=String)
        )
    return clause


def sqlite_match_count() -> TextClause:
    """SQLite: how many apps of the feed match :data:`PARAMETER` (an exact count, from the
    index alone: it holds the feed's apps only)."""
    return text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :{PARAMETER}")  # noqa: S608
