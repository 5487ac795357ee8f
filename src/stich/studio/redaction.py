"""Which columns the Studio never shows: credential hashes, ciphertexts and token material.

The rule goes by name as well as by a list, so a credential column added later is hidden
without anyone remembering to list it: anything ending in ``_hash`` (passwords, tokens,
API keys, OAuth state, anonymous owners, IP addresses), ciphertexts, previews of keys,
viewer keys, and OAuth ``extra`` (it carries an anonymous owner hash).
"""

from __future__ import annotations

import re
from typing import Any, cast

from sqlalchemy import Table

_SENSITIVE_NAME = re.compile(r"(_hash|^ciphertext|_token|^preview|^viewer_key)$")
# Columns whose name does not say so but whose content is credential material.
_SENSITIVE_COLUMNS = {("oauth_states", "extra")}


def is_sensitive(table_name: str, column_name: str) -> bool:
    return bool(_SENSITIVE_NAME.search(column_name)) or (
        (table_name, column_name) in _SENSITIVE_COLUMNS
    )


def hidden_columns(table: Table) -> list[str]:
    """The table's columns the Studio must never render, edit or export."""
    return [column.key for column in table.columns if is_sensitive(table.name, column.name)]


def visible_columns(table: Table) -> list[str]:
    return [column.key for column in table.columns if not is_sensitive(table.name, column.name)]


def key_is_sensitive(table: Table) -> bool:
    """True when the primary key itself is a hash (anonymous owners, sign-in throttles):
    such rows are listed without their key and have no detail page, whose URL holds it."""
    return any(is_sensitive(table.name, column.name) for column in table.primary_key.columns)


def table_of(model: Any) -> Table:
    """A mapped class's table (typed: declarative ``__table__`` is a FromClause to mypy)."""
    return cast(Table, model.__table__)
