"""Read-your-writes bookmarks: opaque, versioned positions in the primary's history.

On PostgreSQL a bookmark carries the WAL LSN read after a commit; a read that presents it
must be served by a node that has replayed at least that far. On SQLite there is one file
and every read is fresh, but the same calls accept and return bookmarks, so application
code is identical on both backends.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Literal

from stich.errors import Invalid

BOOKMARK_VERSION = "1"
BackendKind = Literal["pg", "sqlite"]
_KINDS: dict[str, BackendKind] = {"pg": "pg", "sqlite": "sqlite"}
_MAX_POSITION = (1 << 64) - 1
_MAX_BOOKMARK_LENGTH = 64


@dataclass(frozen=True, order=True)
class Bookmark:
    kind: BackendKind
    position: int

    def encode(self) -> str:
        raw = f"{BOOKMARK_VERSION}:{self.kind}:{self.position:x}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def parse(cls, token: str) -> Bookmark:
        """Decode a client-supplied bookmark, or raise Invalid (HTTP 400) saying why."""
        bad = Invalid(
            "the bookmark is not one this server issued; send back the X-Stich-Bookmark "
            "header value unchanged, or omit it",
            code="invalid_bookmark",
        )
        if not token or len(token) > _MAX_BOOKMARK_LENGTH or not token.isascii():
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            version, kind, position_hex = raw.split(":")
            position = int(position_hex, 16)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad from None
        if version != BOOKMARK_VERSION or kind not in _KINDS or not 0 <= position <= _MAX_POSITION:
            raise bad
        return cls(_KINDS[kind], position)

    @classmethod
    def from_pg_lsn(cls, lsn: str) -> Bookmark:
        high, low = lsn.split("/")
        return cls("pg", (int(high, 16) << 32) | int(low, 16))

    def pg_lsn(self) -> str:
        return f"{self.position >> 32:X}/{self.position & 0xFFFFFFFF:X}"


def sqlite_bookmark() -> Bookmark:
    """SQLite has one copy of the data; the bookmark only needs to be well-formed and
    monotonic, so it carries the commit time in nanoseconds."""
    return Bookmark("sqlite", time.time_ns())


def later(a: Bookmark | None, b: Bookmark | None) -> Bookmark | None:
    """The later of two bookmarks: bookmarks never go backwards (monotonic reads)."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)
