"""Reading the original's column values: timestamps in two shapes, JSON that is sometimes
encoded twice, 0/1 booleans, and text that must fit Stich's column lengths."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from stich.validation import HTTP_URL, ID_PATTERN

_ID = re.compile(ID_PATTERN)
ID_MAX = 36

# Drizzle's {mode: 'timestamp'} stores epoch seconds; anything past this is milliseconds
# (no original row is dated after the year 5000).
_MAX_EPOCH_SECONDS = 100_000_000_000
_TEXT_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


class BadValue(ValueError):
    """A value the importer cannot read; its message is the reason reported for the row."""


def timestamp(value: Any) -> datetime | None:
    """An aware UTC datetime from epoch seconds (int, float or numeric text) or from the
    ``YYYY-MM-DD HH:MM:SS`` text (UTC) that ``DEFAULT (CURRENT_TIMESTAMP)`` leaves."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadValue("a boolean is not a timestamp")
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    if isinstance(value, str):
        text = value.strip()
        try:
            return _from_epoch(float(text))
        except ValueError:
            pass
        for pattern in _TEXT_FORMATS:
            try:
                return datetime.strptime(text, pattern).replace(tzinfo=UTC)
            except ValueError:
                continue
    raise BadValue(f"unreadable timestamp {str(value)[:40]!r}")


def _from_epoch(seconds: float) -> datetime:
    if abs(seconds) >= _MAX_EPOCH_SECONDS:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadValue(f"timestamp {seconds} is out of range") from exc


def epoch(value: Any) -> int | None:
    """Epoch seconds, the fast path for the millions of view rows (same rules)."""
    if type(value) is int and 0 <= value < _MAX_EPOCH_SECONDS:
        return value
    at = timestamp(value)
    return None if at is None else int(at.timestamp())


def json_value(value: Any) -> Any:
    """Decoded JSON; a JSON string that itself holds JSON (double-encoded) is decoded again."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadValue("JSON column holds a non-text value")
    try:
        decoded = json.loads(value)
        for _ in range(3):  # double (rarely triple) encoding
            if not isinstance(decoded, str):
                break
            stripped = decoded.strip()
            if not stripped or stripped[0] not in '{["':
                break
            decoded = json.loads(stripped)
        return storable(decoded)
    except json.JSONDecodeError as exc:
        raise BadValue("invalid JSON") from exc
    except RecursionError as exc:
        raise BadValue("JSON nested too deeply") from exc


def storable(value: Any) -> Any:
    """JSON both backends store and serve: JavaScript's lone surrogates (half an emoji cut
    by ``.slice``: valid JSON, not UTF-8) and NUL characters (refused by PostgreSQL)
    become U+FFFD. The common case costs one encode."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        if "\x00" not in text and "\\u0000" not in text:
            return value
    # A UTF-16 round trip joins valid surrogate pairs and replaces lone ones.
    cleaned = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return json.loads(cleaned.replace("\x00", "\ufffd").replace("\\u0000", "\\ufffd"))


def json_object(value: Any) -> dict[str, Any] | None:
    """A JSON object, as Stich's object columns hold; any other JSON is kept under
    ``{"value": ...}`` so nothing is lost."""
    decoded = json_value(value)
    if decoded is None or isinstance(decoded, dict):
        return decoded
    return {"value": decoded}


def flag(value: Any, default: bool = False) -> bool:
    """0/1 (or 'true'/'false' text) as a boolean."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes")
    return bool(value)


def integer(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BadValue(f"not an integer: {str(value)[:20]!r}") from exc


def fit(value: Any, length: int) -> str | None:
    """Text cut to a column's length (``None`` stays ``None``)."""
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= length else text[:length]


def url(value: Any, notes: Any, column: str) -> str | None:
    """An http(s) URL as Stich accepts one (``stich.validation.HTTP_URL``), at most 2,048
    characters; anything else (``javascript:``, a path, text) is dropped and noted, so
    no page ever links an imported value that Stich would have refused."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    try:
        if len(text) <= 2048:
            return str(HTTP_URL.check(text))
    except ValueError:
        pass
    notes[f"{column} not an http(s) URL (dropped)"] += 1
    return None


def row_id(value: Any) -> str:
    """An original id kept as the Stich id: it must be one the API's paths accept
    (letters, digits, '-' and '_', at most 36 characters), or the row could never be
    reached; such a row is rejected."""
    text = "" if value is None else str(value)
    if not text or len(text) > ID_MAX or not _ID.match(text):
        raise BadValue(f"id is not one Stich accepts (1 to {ID_MAX} of A-Z a-z 0-9 - _)")
    return text
