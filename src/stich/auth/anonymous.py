"""Anonymous owner tokens: minted with an HMAC tag so a forged one is refused before any
look-up, and hashed (keyed) into the owner hash that apps and claims store."""

from __future__ import annotations

import hmac
import re
import secrets

from stich.crypto.tokens import KeyedHasher, TokenKind
from stich.errors import Invalid

ANONYMOUS_PREFIX = f"stich_{TokenKind.ANONYMOUS.value}_"
_ANON_RANDOM_CHARS = 32  # token_urlsafe(24)
_ANON_TAG_CHARS = 32  # 128-bit HMAC tag, hex


def mint_anonymous_token(hasher: KeyedHasher) -> str:
    """``stich_san_<random><tag>``: the tag (HMAC of the random part) proves we issued it."""
    random_part = secrets.token_urlsafe(24)
    tag = hasher.hash(random_part, purpose="anonymous-token")[:_ANON_TAG_CHARS]
    return f"{ANONYMOUS_PREFIX}{random_part}{tag}"


def anonymous_token_is_genuine(hasher: KeyedHasher, token: str) -> bool:
    body = token.removeprefix(ANONYMOUS_PREFIX)
    if body == token or len(body) != _ANON_RANDOM_CHARS + _ANON_TAG_CHARS:
        return False
    random_part, tag = body[:_ANON_RANDOM_CHARS], body[_ANON_RANDOM_CHARS:]
    expected = hasher.hash(random_part, purpose="anonymous-token")[:_ANON_TAG_CHARS]
    return hmac.compare_digest(tag, expected)


_LEGACY_ANONYMOUS = re.compile(r"^[A-Za-z0-9._~+/=-]{16,200}$")


def legacy_anonymous_token(token: str) -> bool:
    """An original system's anonymous session token: not ours (no ``stich_`` prefix) and
    shaped like a random token. It claims only the apps ``stich import`` gave its hash."""
    return not token.startswith("stich_") and _LEGACY_ANONYMOUS.match(token) is not None


def anonymous_owner_hash(hasher: KeyedHasher, token: str | None) -> str | None:
    """The owner hash for an anonymous token a client presents at sign-up or sign-in."""
    if token is None:
        return None
    if legacy_anonymous_token(token):  # imported from the original (stich import)
        return hasher.token_hash(token)
    if not anonymous_token_is_genuine(hasher, token):
        raise Invalid(
            "anonymous_token is not a token issued by POST /auth/anonymous",
            code="invalid_anonymous_token",
        )
    return hasher.token_hash(token)
