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
# Keys inside JSON values (audit old/new values, deployment metadata, imported rows) come
# from anywhere, in any case style (the original's JavaScript wrote ``passwordHash``): a
# wider rule over the key's words, erring on the side of hiding.
_SENSITIVE_WORDS = re.compile(
    r"(^|_)(hash|token|tokens|password|passwd|secret|secrets|ciphertext|encrypted|preview"
    r"|api_key|apikey|private_key|credential|credentials|authorization|cookie)(_|$)"
)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def is_sensitive(table_name: str, column_name: str) -> bool:
    return bool(_SENSITIVE_NAME.search(column_name)) or (
        (table_name, column_name) in _SENSITIVE_COLUMNS
    )


def is_sensitive_key(key: str) -> bool:
    """A key inside a JSON value that names credential material, in any case style."""
    words = _CAMEL_HUMP.sub("_", key).replace("-", "_").replace(" ", "_").lower()
    return bool(_SENSITIVE_NAME.search(words) or _SENSITIVE_WORDS.search(words))


def scrub_credentials(value: object) -> object:
    """A JSON value without its credential fields, at any depth, for display."""
    if isinstance(value, dict):
        return {
            key: scrub_credentials(item)
            for key, item in value.items()
            if not is_sensitive_key(str(key))
        }
    if isinstance(value, list):
        return [scrub_credentials(item) for item in value]
    return value


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
