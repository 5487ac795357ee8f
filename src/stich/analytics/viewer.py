"""Who viewed, from where, on what: the parts of a view event we keep, and how.

A viewer is identified by a keyed hash (HMAC with the server key), never by anything
reversible: the user id for a signed-in viewer, the anonymous token's hash for an
anonymous visitor with a token, and otherwise a daily salt + client IP + user agent +
app id, so a visitor without an account cannot be followed across apps or days and no
IP address is ever stored. A view counts once per viewer per de-duplication window;
windows are aligned to the epoch and divide a day, so none straddles UTC midnight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from functools import lru_cache
from urllib.parse import urlsplit

from stich.analytics.models import VIEWER_KEY_LENGTH
from stich.auth.models import DeviceType
from stich.auth.useragent import parse_user_agent
from stich.crypto.tokens import KeyedHasher

MAX_ORIGIN_LENGTH = 255
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Viewer:
    """Whoever is looking; at most one of ``user_id`` / ``anonymous_owner_hash`` is set."""

    user_id: str | None = None
    anonymous_owner_hash: str | None = None
    client_ip: str | None = None
    user_agent: str | None = None

    def __repr__(self) -> str:  # never show the address
        return (
            f"Viewer(user_id={self.user_id!r}, anonymous={self.anonymous_owner_hash is not None})"
        )


def viewer_key(hasher: KeyedHasher, viewer: Viewer, *, app_id: str, day: date) -> str:
    """The keyed hash that stands for this viewer in ``app_views`` (its first
    ``VIEWER_KEY_LENGTH`` hex digits)."""
    if viewer.user_id is not None:
        key = hasher.hash(viewer.user_id, purpose="viewer:user")
    elif viewer.anonymous_owner_hash is not None:
        key = hasher.hash(viewer.anonymous_owner_hash, purpose="viewer:anonymous")
    else:
        salt = _daily_salt(hasher, day)
        fingerprint = "\x00".join((salt, viewer.client_ip or "", viewer.user_agent or "", app_id))
        key = hasher.hash(fingerprint, purpose="viewer:visitor")
    return key[:VIEWER_KEY_LENGTH]


@lru_cache(maxsize=64)
def _daily_salt(hasher: KeyedHasher, day: date) -> str:
    return hasher.hash(day.isoformat(), purpose="viewer:daily-salt")


def window_start(at: datetime, window_seconds: int) -> int:
    """Epoch seconds at which the de-duplication window holding ``at`` begins."""
    epoch = int(at.timestamp())
    return epoch - epoch % window_seconds


def day_start(day: date) -> int:
    """Epoch seconds of 00:00 UTC on ``day``."""
    return int(datetime.combine(day, time(), tzinfo=UTC).timestamp())


def referrer_origin(referrer: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) referrer; paths and queries are dropped."""
    if not referrer:
        return None
    try:
        parts = urlsplit(referrer.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    origin = f"{scheme}://[{host}]" if ":" in host else f"{scheme}://{host}"  # IPv6
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        origin += f":{port}"
    return origin if len(origin) <= MAX_ORIGIN_LENGTH else None


@lru_cache(maxsize=4096)
def device_type(user_agent: str | None) -> DeviceType:
    # Cached: a handful of browser builds make most traffic, and parsing is a dozen regexes.
    return parse_user_agent(user_agent).device_type
