"""An audit entry's old and new values as a readable diff: one line per field, what it
was and what it became. Fields whose name marks credential material (the Studio's
redaction rule: hashes, tokens, key previews) are left out and counted instead."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stich.studio.redaction import is_sensitive_key, scrub_credentials

_VALUE_MAX = 120
_MISSING = object()


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str | None  # None: the field was not there before
    new: str | None  # None: the field is gone after

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "changed" if self.old != self.new else "same"


@dataclass(frozen=True)
class AuditDiff:
    changes: list[FieldChange]
    hidden: int  # fields left out because they hold credential material


def audit_diff(old: object, new: object) -> AuditDiff:
    """Fields in the order they first appear (old, then new ones).

    Stich writes objects; a value of another JSON type (a row written outside Stich) shows
    as one field named ``(value)`` rather than failing the page.
    """
    before, after = _fields(old), _fields(new)
    names = list(dict.fromkeys([*before, *after]))
    shown = [name for name in names if not is_sensitive_key(str(name))]
    changes = [
        FieldChange(
            field=name,
            old=_text(before.get(name, _MISSING)),
            new=_text(after.get(name, _MISSING)),
        )
        for name in shown
    ]
    return AuditDiff(changes=changes, hidden=len(names) - len(shown))


def _text(value: object) -> str | None:
    if value is _MISSING:
        return None
    value = scrub_credentials(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _VALUE_MAX else text[: _VALUE_MAX - 1] + "\u2026"


def _fields(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    return {"(value)": value}
