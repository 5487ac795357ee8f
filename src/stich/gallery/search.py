"""Full-text search over app titles and descriptions, on both backends.

SQLite searches ``apps_fts``, an FTS5 external-content table over ``apps`` kept in sync by
triggers; PostgreSQL matches ``to_tsvector('simple', title || ' ' || description)``
against a GIN expression index restricted to the feed predicate. Both are created by
migration 0004 and are invisible to the models, so autogenerate is told to ignore them
(:func:`is_unmanaged`, used by ``migrations/env.py``).

A search string is reduced to at most eight words of letters and digits; every word must
match, as a prefix ("reac" finds "React"). No user text ever reaches the FTS5 or tsquery
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
MAX_TERMS = 8
MAX_QUERY_LENGTH = 200

# Exactly the expression of the GIN index (constants inline: a bound parameter in its
# place would stop PostgreSQL from matching the index).
PG_DOCUMENT = (
    "to_tsvector('simple', coalesce(apps.title, '') || ' ' || coalesce(apps.description, ''))"
)

# Letters and digits; '_' separates words, as in both tokenizers.
_WORD = re.compile(r"[^\W_]+")


def is_unmanaged(name: str | None) -> bool:
    """Schema objects migration 0004 creates by hand; autogenerate must not compare them."""
    return name is not None and (name == SEARCH_INDEX or name.startswith(FTS_TABLE))


def search_terms(query: str) -> list[str]:
    """The words of a search string, lower-cased; 422 when there are none."""
    terms = [word.lower() for word in _WORD.findall(query[:MAX_QUERY_LENGTH])][:MAX_TERMS]
    if not terms:
        raise InvalidInput("q must contain at least one letter or digit", code="invalid_search")
    return terms


def terms_digest(terms: list[str]) -> str:
    """A short fingerprint of a search, so a cursor cannot be replayed on another one."""
    return hashlib.sha256(" ".join(terms).encode()).hexdigest()[:12]


# The bound parameter carrying a search's words into :func:`match_clause`.
PARAMETER = "search_query"


def match_clause(dialect: str, value: str | None = None) -> ColumnElement[bool] | TextClause:
    """A WHERE clause over ``apps`` true for apps whose title or description has every
    word of the parameter :data:`PARAMETER`: ``value`` (made by :func:`match_value`), or
    supplied at execution. Constant SQL: the user's words travel only in the parameter."""
    parameter = bindparam(PARAMETER, value, type_=String)
    if dialect == "sqlite":
        return literal_column("apps.rowid").in_(
            text(
                f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :{PARAMETER}"  # noqa: S608
            ).bindparams(parameter)
        )
    return text(f"{PG_DOCUMENT} @@ to_tsquery('simple', :{PARAMETER})").bindparams(parameter)


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


def matches(
    terms: list[str], dialect: str, framework: str | None = None
) -> ColumnElement[bool] | TextClause:
    """:func:`match_clause` with the words of ``terms`` (and ``framework``) bound."""
    return match_clause(dialect, match_value(terms, dialect, framework))


def sqlite_match_count() -> TextClause:
    """SQLite: how many apps of the feed match :data:`PARAMETER` (an exact count, from the
    index alone: it holds the feed's apps only)."""
    return text(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :{PARAMETER}")  # noqa: S608
