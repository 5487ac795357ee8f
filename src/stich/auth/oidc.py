"""Google's OpenID Connect ``id_token``, verified with joserfc rather than by hand.

Checked: the RS256 signature against Google's published key set (fetched from
``STICH_OAUTH_GOOGLE_JWKS_URL`` and cached), the issuer, the audience (our client id),
the expiry and issue time (a minute of leeway for clock skew), and the nonce the flow
sent — so a token minted for another client, another sign-in or another time is refused.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from stich.errors import Invalid, Unavailable

log = structlog.get_logger("stich.auth")

GOOGLE_ISSUERS = ["https://accounts.google.com", "accounts.google.com"]
KEYS_MAX_AGE = 3600.0  # Google rotates its keys over days and publishes them early
REFRESH_AT_MOST_EVERY = 60.0  # an unknown key id refetches, but not on every bad token
LEEWAY_SECONDS = 60


class KeySetCache:
    """One provider's published keys, fetched on first use and refreshed when old, or
    when a token names a key we do not have (a rotation) — at most once a minute."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    def get(self, *, refresh: bool = False) -> KeySet:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = self._keys is None or age > KEYS_MAX_AGE
            if stale or (refresh and age > REFRESH_AT_MOST_EVERY):
                self._keys = self._fetch()
                self._fetched_at = time.monotonic()
            assert self._keys is not None
            return self._keys

    def _fetch(self) -> KeySet:
        try:
            response = httpx.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            return KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError) as exc:
            log.warning("could not fetch the provider's keys", error=type(exc).__name__)
            raise Unavailable(
                "google did not answer as expected; try again", code="oauth_provider_error"
            ) from None


_caches: dict[str, KeySetCache] = {}
_caches_lock = threading.Lock()


def key_set_for(url: str, timeout: float) -> KeySetCache:
    with _caches_lock:
        cache = _caches.get(url)
        if cache is None:
            cache = _caches[url] = KeySetCache(url, timeout)
        return cache


def id_token_refused() -> Invalid:
    return Invalid("google's identity token did not check out", code="oauth_id_token_invalid")


def verify_id_token(
    token: str, *, keys: KeySetCache, client_id: str, nonce: str | None, now: float | None = None
) -> dict[str, Any]:
    """The token's claims once everything checks; otherwise 400 ``oauth_id_token_invalid``."""
    try:
        decoded = jwt.decode(token, keys.get(), algorithms=["RS256"])
    except (JoseError, ValueError):
        try:  # perhaps signed with a key published since we fetched
            decoded = jwt.decode(token, keys.get(refresh=True), algorithms=["RS256"])
        except (JoseError, ValueError):
            raise id_token_refused() from None
    registry = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "values": GOOGLE_ISSUERS},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce or ""},
    )
    try:
        registry.validate(decoded.claims)
    except JoseError:
        raise id_token_refused() from None
    claims: dict[str, Any] = dict(decoded.claims)
    return claims
