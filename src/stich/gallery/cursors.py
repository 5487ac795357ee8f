"""The feed's cursors: what a next page needs to know, opaque to clients.

A cursor is bound to the listing that issued it (:attr:`FeedRequest.cursor_scope`) and
decoded through ``stich.db.pagination``; anything else is 422 ``invalid_cursor``.

- counter sorts (``recent``, ``updated``, all-time ``popular`` / ``viewed``): the last
  row's sort value and id;
- windowed sorts: the reference day pinned by the first page, the last row's score,
  ``created_at`` and id, and the snapshot generation walked (0: computed live).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from stich.db.pagination import decode_cursor, encode_cursor
from stich.errors import InvalidInput
from stich.gallery.sorts import COUNTER_SORTS, FeedRequest


def invalid_cursor() -> InvalidInput:
    return InvalidInput(
        "cursor is not valid for this listing; use next_cursor from the previous "
        "page with the same sort and filters",
        code="invalid_cursor",
    )


def encode_counter(request: FeedRequest, value: Any, app_id: str) -> str:
    return encode_cursor(request.cursor_scope, [value, app_id])


def decode_counter(request: FeedRequest) -> tuple[Any, str]:
    """The sort value and id a counter-sort page continues after."""
    kind = COUNTER_SORTS[request.sort][1]
    value, app_id = decode_cursor(request.cursor or "", request.cursor_scope, (kind, str))
    return value, app_id


@dataclass(frozen=True)
class ScoredCursor:
    reference: date
    score: int
    created_at: datetime
    app_id: str
    generation: int  # 0: the walk is computed live

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
        ],
    )


def decode_scored(request: FeedRequest, today: date) -> ScoredCursor:
    reference_text, score, created_at, app_id, generation = decode_cursor(
        request.cursor or "", request.cursor_scope, (str, int, datetime, str, int)
    )
    try:
        reference = date.fromisoformat(reference_text)
    except ValueError:
        raise invalid_cursor() from None
    if reference > today or score < 0 or generation < 0:
        raise invalid_cursor()
    return ScoredCursor(reference, score, created_at, app_id, generation)
