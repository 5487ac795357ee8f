"""Per-client sign-in throttling: an attacker's failures cost the attacker.

The per-account lock (``users.locked_until``) protects a password from being guessed
slowly from many places; this throttle makes one client address pay for its own
failures. Failed password sign-ins are counted per client network (an IPv4 address, an
IPv6 /64) over a sliding window; beyond the budget, that client's sign-ins are refused
with 429 and ``Retry-After`` before any account is looked up or any password checked,
so the refusals cost nothing and count against no account.

The counts live behind :class:`FailureStore`, a two-method interface: the in-process
:class:`MemoryFailureStore` is the default (one ``stich serve`` is a whole deployment);
a shared store for several processes can implement the same two methods. The in-process
store forgets everything on a restart, which only hands an attacker a fresh budget.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Protocol

import structlog
from starlette.requests import Request

from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.errors import RateLimited

log = structlog.get_logger("stich.auth")


class FailureStore(Protocol):
    """Failures per key within a sliding window, against a budget."""

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again; None while it is within its budget."""
        ...

    def add_failure(self, key: str) -> bool:
        """Count one failure; True when this one used up the budget."""
        ...


class MemoryFailureStore:
    """The in-process store: per key, the times of its last ``budget`` failures.

    Memory is bounded: at most ``max_keys`` keys, the least recently failing dropped
    first (forgetting a key only gives that client its budget back).
    """

    def __init__(
        self,
        budget: int,
        window_seconds: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budget = budget
        self.window = window_seconds
        self.max_keys = max_keys
        self.clock = clock
        self._lock = threading.Lock()
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float | None:
        now = self.clock()
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                return None
            while times and times[0] <= now - self.window:
                times.popleft()
            if not times:
                del self._failures[key]
                return None
            if len(times) < self.budget:
                return None
            return times[0] + self.window - now

    def add_failure(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            times = self._failures.pop(key, None) or deque(maxlen=self.budget)
            times.append(now)
            self._failures[key] = times  # most recent last
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
            recent = sum(1 for at in times if at > now - self.window)
            return recent >= self.budget


def client_network(client_ip: str | None) -> str:
    """What one client is: its IPv4 address, or its IPv6 /64 (one host's usual share)."""
    if client_ip is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class ClientThrottle:
    def __init__(self, store: FailureStore, hasher: KeyedHasher) -> None:
        self.store = store
        self.hasher = hasher

    def _key(self, client_ip: str | None) -> str:
        # Keyed, so a shared store never holds client addresses.
        return self.hasher.hash(client_network(client_ip), purpose="login-client")

    def check(self, client_ip: str | None) -> None:
        """Refuse a client that has used up its failure budget (429, Retry-After)."""
        wait = self.store.retry_after(self._key(client_ip))
        if wait is None:
            return
        seconds = max(1, math.ceil(wait))
        raise RateLimited(
            "too many failed sign-ins from this address; try again later",
            code="too_many_sign_in_failures",
            details={"retry_after": seconds},
            headers={"Retry-After": str(seconds)},
        )

    def failed(self, client_ip: str | None) -> None:
        if self.store.add_failure(self._key(client_ip)):
            log.warning("sign-in throttle engaged for a client")  # never the address


_attach_lock = threading.Lock()


def client_throttle(request: Request) -> ClientThrottle:
    """The application's throttle (a dependency), made on first use from its settings."""
    state = request.app.state
    with _attach_lock:
        throttle: ClientThrottle | None = getattr(state, "login_client_throttle", None)
        if throttle is None:
            settings: Settings = state.settings
            store = MemoryFailureStore(
                settings.login_client_max_failures, settings.login_client_window_seconds
            )
            throttle = ClientThrottle(store, state.hasher)
            state.login_client_throttle = throttle
        return throttle


class MailRequestThrottle:
    """Requests that send mail (verification, reset, email change), per client network.

    Each request counts, whatever the address, so one client cannot walk through many
    addresses; the answer is the same for every address, so it reveals nothing.
    """

    def __init__(self, store: FailureStore, hasher: KeyedHasher) -> None:
        self.store = store
        self.hasher = hasher

    def take(self, client_ip: str | None) -> None:
        """Count one request, or refuse it (429, Retry-After) beyond the budget."""
        key = self.hasher.hash(client_network(client_ip), purpose="mail-client")
        wait = self.store.retry_after(key)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise RateLimited(
                "too many requests for mail from this address; try again later",
                code="too_many_mail_requests",
                details={"retry_after": seconds},
                headers={"Retry-After": str(seconds)},
            )
        self.store.add_failure(key)


def mail_request_throttle(request: Request) -> MailRequestThrottle:
    """The application's mail-request throttle (a dependency), made on first use."""
    state = request.app.state
    with _attach_lock:
        throttle: MailRequestThrottle | None = getattr(state, "mail_request_throttle", None)
        if throttle is None:
            settings: Settings = state.settings
            store = MemoryFailureStore(
                settings.email_client_max_requests, settings.email_client_window_seconds
            )
            throttle = MailRequestThrottle(store, state.hasher)
            state.mail_request_throttle = throttle
        return throttle
