"""Opaque bearer tokens and keyed hashes (HMAC-SHA256 with the server key).

Tokens carry a short kind prefix so a leaked string is recognisable (and secret scanners
can match it); only their keyed hash is ever stored. A stolen database dump therefore
holds no usable credential, and without the server key the hashes cannot be brute-forced
offline from guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

TOKEN_BYTES = 32


class TokenKind(StrEnum):
    ACCESS = "sat"
    REFRESH = "srt"
    API_KEY = "sk"
    ANONYMOUS = "san"
    OAUTH_STATE = "sos"


def new_token(kind: TokenKind) -> str:
    return f"stich_{kind.value}_{secrets.token_urlsafe(TOKEN_BYTES)}"


def token_kind(token: str) -> TokenKind | None:
    """The kind named by a token's prefix, or None for anything that is not our token."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != "stich" or not 20 <= len(parts[2]) <= 100:
        return None
    try:
        return TokenKind(parts[1])
    except ValueError:
        return None


class KeyedHasher:
    """HMAC-SHA256 under the server key, domain-separated by purpose."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the server key must be at least 32 bytes")
        self._key = key

    def hash(self, value: str, *, purpose: str) -> str:
        message = purpose.encode() + b"\x00" + value.encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def token_hash(self, token: str) -> str:
        return self.hash(token, purpose="token")

    def ip_hash(self, ip: str) -> str:
        return self.hash(ip, purpose="ip")

    def __repr__(self) -> str:
        return "KeyedHasher(<key hidden>)"
