"""The feed's cursors: what a next page needs to know, opaque to clients.

A cursor is bound to the listing that issued it (:attr:`FeedRequest.cursor_scope`) and
decoded through ``stich.db.pagination``; anything else is 422 ``invalid_cursor``.

- counter sorts (``recent``, ``updated``, all-time ``popular`` / ``viewed``): the last
  row's sort value and id;
- windowed sorts: the reference day pinned by the first page, the last row's score,
  ``created_at`` and id, and the snapshot generation walked (0: computed live);
- and, for every sort whose values can go down (all but ``recent`` and ``updated``), the
  walk's *since*: a time no later than the values its pages listed were read. Growing
  counts only move an app up, into pages already seen; a lowered one could bring it back
  below the cursor, so a live page skips apps demoted since then (``feed_demotions``).
  Such an app is left out of the rest of that walk rather than listed twice. A snapshot
  page needs no such care: its values do not move.

Every value is bounded on the way in (the codec's bounds, then each column's range), so a
forged cursor is a 422, never an overflow in a driver or in date arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from stich.db.pagination import EARLIEST, decode_cursor, encode_cursor
from stich.errors import InvalidInput
from stich.gallery.sorts import COUNTER_SORTS, DEMOTABLE, FeedRequest


def invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not valid for this listing; use next_cursor from the previous "
        "page with the same sort and filters",
        code="invalid_cursor",
    )


# A demotion stamped this long before a page read may still have been invisible to it:
# the write commits after its trigger read the clock, and clocks differ a little.
DEMOTION_GRACE = timedelta(minutes=2)


def walk_since(now: datetime, snapshot_age: timedelta | None = None) -> datetime:
    """The *since* of a walk whose first page is read at ``now``; from a snapshot at most
    ``snapshot_age`` old, its values are older still."""
    return now - (snapshot_age or timedelta(0)) - DEMOTION_GRACE


@dataclass(frozen=True)
class CounterCursor:
    value: Any
    app_id: str
    since: datetime | None  # None for a sort whose values never go down

    @property
    def after(self) -> tuple[Any, str]:
        return self.value, self.app_id


def encode_counter(request: FeedRequest, cursor: CounterCursor) -> str:
    values = [cursor.value, cursor.app_id]
    if request.sort in DEMOTABLE:
        values.append(cursor.since)
    return encode_cursor(request.cursor_scope, values)


def decode_counter(request: FeedRequest) -> CounterCursor:
    """The sort value and id a counter-sort page continues after, and the walk's since."""
    kind = COUNTER_SORTS[request.sort][1]
    demotable = request.sort in DEMOTABLE
    kinds = (kind, str, datetime) if demotable else (kind, str)
    value, app_id, *since = decode_cursor(request.cursor or "", request.cursor_scope, kinds)
    if kind is int and not _fits_int32(value):
        raise invalid_cursor()  # star_count / view_count are 32-bit columns
    return CounterCursor(value, app_id, since[0] if demotable else None)


def _fits_int32(value: int) -> bool:
    return -(2**31) <= value < 2**31


@dataclass(frozen=True)
class ScoredCursor:
    reference: date
    score: int
    created_at: datetime
    app_id: str
    generation: int  # 0: the walk is computed live
    since: datetime

    @property
    def after(self) -> tuple[int, datetime, str]:
        return self.score, self.created_at, self.app_id


def encode_scored(request: FeedRequest, cursor: ScoredCursor) -> str:
    return encode_cursor(
        request.cursor_scope,
        [
            cursor.reference.isoformat(),
            cursor.score,
            cursor.created_at,
            cursor.app_id,
            cursor.generation,
            cursor.since,
        ],
    )


def decode_scored(request: FeedRequest, today: date) -> ScoredCursor:
    reference_text, score, created_at, app_id, generation, since = decode_cursor(
        request.cursor or "", request.cursor_scope, (str, int, datetime, str, int, datetime)
    )
    try:
        reference = date.fromisoformat(reference_text)
    except ValueError:
        raise invalid_cursor() from None
    # The window is counted back from the reference day: it must stay in the calendar.
    if not EARLIEST.date() <= reference <= today:
        raise invalid_cursor()
    if score < 0 or not 0 <= generation < 2**31:  # a score is >= 0, a generation 32-bit
        raise invalid_cursor()
    return ScoredCursor(reference, score, created_at, app_id, generation, since)
