"""Rate limits: budgets per client address and per credential, before any endpoint runs.

A pure ASGI middleware classifies each request by method and path into one budget
(sign-up, sign-in, refresh, password, write, view, feed) and counts it with the `limits`
library (sliding-window counter by default) against keyed hashes, never raw addresses or tokens:

- the client: its address as :func:`stich.api.context.client_ip` sees it (so
  ``STICH_TRUSTED_PROXIES`` applies), an IPv6 client by its /64;
- the credential: the ``Authorization`` header as sent. Hashing it instead of resolving
  it costs no query and budgets one token (one account's session or API key) alike;
- for a sign-in, the submitted email, whether or not an account has it: known and
  unknown addresses are limited alike, so a 429 says nothing about who is registered.

A refused request is a 429 with the JSON error body, ``Retry-After`` and the IETF draft
``RateLimit-Limit`` / ``RateLimit-Remaining`` / ``RateLimit-Reset`` headers, which every
answer of a limited endpoint carries. A refusal is not counted, so a client that stops is
served again once its window has passed. The store is in-process (per server process)
unless ``STICH_RATE_LIMIT_URL`` names a Redis; if that Redis cannot be reached, requests
are let through (logged) rather than refused: the limits protect the service, they must
not take it down.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import urllib.parse
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import limits.strategies
import structlog
from limits import RateLimitItem, WindowStats, parse
from limits.aio.storage import Storage
from limits.aio.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)
from limits.storage import MemoryStorage, storage_from_string
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stich.api.context import client_ip
from stich.api.errors import error_body
from stich.auth.throttle import client_network
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.users.schemas import normalize_email

log = structlog.get_logger("stich.ratelimit")

# sqladmin's sign-in form, at the Studio's base URL (stich.studio.app.BASE_URL).
STUDIO_LOGIN_PATH = "/admin/login"
_VIEWS = re.compile(r"/api/apps/[^/]+/views")
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_AUTHORIZATION = b"authorization"
_STORE_FAILURE_LOG_SECONDS = 60.0
_CLIENT_KEY_CACHE = 10_000
_SYNC_STRATEGIES: dict[str, type[limits.strategies.RateLimiter]] = {
    "moving-window": limits.strategies.MovingWindowRateLimiter,
    "fixed-window": limits.strategies.FixedWindowRateLimiter,
    "sliding-window-counter": limits.strategies.SlidingWindowCounterRateLimiter,
}
_STRATEGIES: dict[str, type[RateLimiter]] = {
    "moving-window": MovingWindowRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
}


class Budget(StrEnum):
    SIGNUP = "signup"
    SIGNIN = "signin"
    REFRESH = "refresh"
    PASSWORD = "password"  # noqa: S105 (a budget's name, not a password)
    WRITE = "write"
    VIEW = "view"
    FEED = "feed"


_ROUTES: dict[tuple[str, str], Budget] = {
    ("POST", "/api/auth/register"): Budget.SIGNUP,
    ("POST", "/api/auth/anonymous"): Budget.SIGNUP,
    ("POST", "/api/auth/login"): Budget.SIGNIN,
    ("POST", STUDIO_LOGIN_PATH): Budget.SIGNIN,
    ("POST", "/api/auth/refresh"): Budget.REFRESH,
    ("POST", "/api/auth/password/forgot"): Budget.PASSWORD,
    ("POST", "/api/auth/password/reset"): Budget.PASSWORD,
    ("POST", "/api/me/password"): Budget.PASSWORD,
    ("GET", "/api/apps/public"): Budget.FEED,
}


def classify(method: str, path: str) -> Budget | None:
    """The budget a request counts against; None for requests that are not limited."""
    budget = _ROUTES.get((method, path))
    if budget is not None:
        return budget
    if method not in _WRITES or not path.startswith("/api/"):
        return None
    return Budget.VIEW if method == "POST" and _VIEWS.fullmatch(path) else Budget.WRITE


@dataclass(frozen=True)
class Verdict:
    """What the budgets said: the tightest limit, and the refusal if there is one."""

    limit: int
    remaining: int
    reset_seconds: int
    refused: bool

    def headers(self) -> dict[str, str]:
        values = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if self.refused:
            values["Retry-After"] = str(max(1, self.reset_seconds))
        return values


class RateLimiterStore:
    """The configured strategy over its storage.

    In process, the synchronous storage is called inline: it is a few microseconds of
    Python, cheaper than the tasks and timers of the async one. Redis is asynchronous (a
    round trip must not hold the event loop), and its client binds its connections to one
    event loop: a server has one, a test client may start several, so a new loop gets a
    new client.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.items = {
            Budget.SIGNUP: parse(settings.rate_limit_signup),
            Budget.SIGNIN: parse(settings.rate_limit_signin),
            Budget.REFRESH: parse(settings.rate_limit_refresh),
            Budget.PASSWORD: parse(settings.rate_limit_password),
            Budget.WRITE: parse(settings.rate_limit_write),
            Budget.VIEW: parse(settings.rate_limit_view),
            Budget.FEED: parse(settings.rate_limit_feed),
        }
        self.signin_email = parse(settings.rate_limit_signin_email)
        url = settings.rate_limit_url
        self.in_process = url is None or url.startswith("memory://")
        self._local = _SYNC_STRATEGIES[settings.rate_limit_strategy](SweepingMemoryStorage())
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shared: RateLimiter | None = None

    def shared(self) -> RateLimiter:
        loop = asyncio.get_running_loop()
        if self._shared is None or self._loop is not loop:
            # redis-py is already a dependency (the view queue); limits' default is coredis.
            storage = storage_from_string(
                f"async+{self.settings.rate_limit_url}",
                implementation="redispy",
                key_prefix=self.settings.rate_limit_prefix,
            )
            self._shared = _STRATEGIES[self.settings.rate_limit_strategy](cast(Storage, storage))
            self._loop = loop
        return self._shared

    async def check(self, counts: list[tuple[RateLimitItem, str]]) -> Verdict:
        """Count the request against each (limit, key); with Redis the keys are counted
        concurrently, so a request waits two round trips whatever its number of keys."""
        now = time.time()
        if self.in_process:
            verdicts = []
            for item, key in counts:
                allowed = self._local.hit(item, key)
                stats = self._local.get_window_stats(item, key)
                verdicts.append(_verdict(item, allowed, stats, now))
        else:
            limiter = self.shared()

            async def count(item: RateLimitItem, key: str) -> Verdict:
                allowed = await limiter.hit(item, key)
                return _verdict(item, allowed, await limiter.get_window_stats(item, key), now)

            verdicts = list(await asyncio.gather(*(count(item, key) for item, key in counts)))
        # A refusal wins; else the budget closest to its end speaks for the request.
        return min(verdicts, key=lambda v: (not v.refused, v.remaining))


class SweepingMemoryStorage(MemoryStorage):
    """limits' in-process storage, sweeping expired keys at most once a second.

    The base class starts a new timer *thread* 10 ms after any count whenever the last
    one has finished: under steady traffic, a thread start every 10 ms, about 6 % of a
    feed request's CPU (docs/benchmarks.md, HTTP). Counts do not depend on the sweep
    (every read checks its key's expiry); it only frees expired keys' memory.
    """

    SWEEP_EVERY_S = 1.0

    def __init__(self) -> None:
        self._next_sweep = 0.0
        super().__init__()

    def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - the base's private hook
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_EVERY_S
            getattr(MemoryStorage, "_MemoryStorage__schedule_expiry")(self)  # noqa: B009


def _verdict(item: RateLimitItem, allowed: bool, stats: WindowStats, now: float) -> Verdict:
    return Verdict(
        limit=item.amount,
        remaining=max(0, stats.remaining),
        reset_seconds=max(0, math.ceil(stats.reset_time - now)),
        refused=not allowed,
    )


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, hasher: KeyedHasher) -> None:
        self.app = app
        self.settings = settings
        self.hasher = hasher
        self.store = RateLimiterStore(settings)
        self._store_failed_at = -math.inf
        self._client_keys: dict[str | None, str] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):  # behind a proxy's path prefix
            path = path[len(root_path) :]
        budget = classify(scope["method"], path)
        if budget is None:
            await self.app(scope, receive, send)
            return
        email = None
        if budget is Budget.SIGNIN:
            body, receive = await _buffered(receive)
            email = _submitted_email(path, body)
        try:
            verdict = await self.store.check(self._counts(scope, budget, email))
        except Exception as exc:  # the store is down: serve rather than refuse everyone
            self._store_failed(exc)
            await self.app(scope, receive, send)
            return
        if verdict.refused:
            await _refusal(budget, verdict)(scope, receive, send)
            return
        headers = [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _counts(
        self, scope: Scope, budget: Budget, email: str | None
    ) -> list[tuple[RateLimitItem, str]]:
        item = self.store.items[budget]
        credential = next((v for k, v in scope["headers"] if k == _AUTHORIZATION), None)
        credential_key = (
            f"{budget}/credential/"
            + self.hasher.hash(credential.decode("latin-1"), purpose="rate-credential")
            if credential
            else None
        )
        if budget is Budget.FEED and credential_key is not None:
            return [(item, credential_key)]  # signed-in readers: their own budget
        address = client_ip(Request(scope), self.settings.trusted_proxies)
        counts = [(item, f"{budget}/client/{self._client_key(address)}")]
        if budget is Budget.SIGNIN and email:
            key = self.hasher.hash(email, purpose="rate-email")
            counts.append((self.store.signin_email, f"{budget}/email/{key}"))
        elif credential_key is not None and budget not in (Budget.SIGNUP, Budget.SIGNIN):
            counts.append((item, credential_key))
        return counts

    def _client_key(self, address: str | None) -> str:
        """The keyed hash of a client's network, remembered for the busiest clients."""
        key = self._client_keys.get(address)
        if key is None:
            key = self.hasher.hash(client_network(address), purpose="rate-client")
            if len(self._client_keys) >= _CLIENT_KEY_CACHE:
                self._client_keys.clear()  # cheap and rare: a cache, not a record
            self._client_keys[address] = key
        return key

    def _store_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._store_failed_at >= _STORE_FAILURE_LOG_SECONDS:
            self._store_failed_at = now
            log.warning("rate-limit store unavailable; not limiting", error=type(exc).__name__)


def _refusal(budget: Budget, verdict: Verdict) -> JSONResponse:
    seconds = max(1, verdict.reset_seconds)
    body = error_body(
        "rate_limited",
        f"too many requests; try again in {seconds} seconds",
        {"retry_after": seconds, "budget": str(budget)},
    )
    return JSONResponse(body, status_code=429, headers=verdict.headers())


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """The whole body (bounded by the request-limits middleware outside this one), and a
    ``receive`` that hands the same messages to the endpoint."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay


def _submitted_email(path: str, body: bytes) -> str | None:
    """The email a sign-in names (JSON ``email``, or the Studio form's ``username``),
    normalised as sign-in compares it; None when the body has none."""
    value: Any = None
    try:
        if path == STUDIO_LOGIN_PATH:
            value = urllib.parse.parse_qs(body.decode("utf-8")).get("username", [None])[0]
        else:
            parsed = json.loads(body)
            value = parsed.get("email") if isinstance(parsed, dict) else None
    except (ValueError, RecursionError):
        return None  # the endpoint answers a malformed body itself
    if not isinstance(value, str):
        return None
    try:
        return normalize_email(value)  # as the sign-in itself does
    except ValueError:
        return value.strip().lower()[:320] or None  # still counted: the answer is the same
