"""Keyset pagination on ``(sort value, id)``: stable under ties, inserts and deletes.

A cursor is opaque to clients (URL-safe base64 of JSON) and validated on the way in: it
must name the same sort it was issued for and carry values of the expected types, each
within bounds (times between 1900 and 9000 UTC, 64-bit integers, finite floats).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, or_

from stich.errors import InvalidInput

T = TypeVar("T")
CursorValue = str | int | float | datetime | None
_MAX_CURSOR_LENGTH = 512
# Every decoded value is bounded, so no forged one reaches a driver or date arithmetic
# that cannot hold it (a 500): times within these years (UTC), integers within 64 bits.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    has_more: bool


def _bad_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not valid for this listing; use next_cursor from the previous page "
        "with the same sort and filters",
        code="invalid_cursor",
    )


def encode_cursor(sort: str, values: Sequence[CursorValue]) -> str:
    encoded = [{"t": v.isoformat()} if isinstance(v, datetime) else v for v in values]
    raw = json.dumps([sort, encoded], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, sort: str, kinds: Sequence[type]) -> tuple[Any, ...]:
    """Decode a cursor issued for ``sort`` whose values have the given types."""
    if not token or len(token) > _MAX_CURSOR_LENGTH or not token.isascii():
        raise _bad_cursor()
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        cursor_sort, values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise _bad_cursor() from None
    if cursor_sort != sort or not isinstance(values, list) or len(values) != len(kinds):
        raise _bad_cursor()
    decoded: list[Any] = []
    for value, kind in zip(values, kinds, strict=True):
        decoded.append(_decode_value(value, kind))
    return tuple(decoded)


def _decode_value(value: Any, kind: type) -> Any:
    if kind is datetime:
        if not isinstance(value, dict) or not isinstance(value.get("t"), str):
            raise _bad_cursor()
        try:
            parsed = datetime.fromisoformat(value["t"])
        except ValueError:
            raise _bad_cursor() from None
        if parsed.tzinfo is None:
            raise _bad_cursor()
        try:
            parsed = parsed.astimezone(UTC)  # year 1 at +14:00 is before the calendar
        except OverflowError:
            raise _bad_cursor() from None
        if not EARLIEST <= parsed < LATEST:
            raise _bad_cursor()
        return parsed
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _bad_cursor()
    if kind is int and not INT64_MIN <= value <= INT64_MAX:
        raise _bad_cursor()  # no column holds it; drivers would fail on it
    if kind is float and (
        isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
    ):
        raise _bad_cursor()
    if kind is str and (not isinstance(value, str) or len(value) > 200 or not value.isprintable()):
        raise _bad_cursor()  # NUL and control characters never appear in our values
    return value


def after(
    columns: Sequence[ColumnElement[Any]], values: Sequence[Any], *, descending: bool
) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in ``ORDER BY columns`` (all in one direction).

    Written as an expanded OR of ANDs rather than a row-value comparison so that every
    planner turns it into an index range on the leading column.
    """
    clauses: list[ColumnElement[bool]] = []
    for i, column in enumerate(columns):
        equal_prefix = [columns[j] == values[j] for j in range(i)]
        beyond = column < values[i] if descending else column > values[i]
        clauses.append(and_(*equal_prefix, beyond))
    return or_(*clauses)
