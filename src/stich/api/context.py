"""Per-request context: request id, client, the client's bookmark and units of work.

Endpoints open their unit of work through the context so the commit happens inside the
endpoint (before the response is sent) and its bookmark reaches the response header.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from starlette.requests import Request

from stich.audit.service import RequestMeta
from stich.crypto.tokens import KeyedHasher
from stich.db import Database, UnitOfWork
from stich.db.routing import Bookmark, later

BOOKMARK_HEADER = "X-Stich-Bookmark"
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


@dataclass
class RequestState:
    """Mutable state the middleware shares with the endpoint (via ``request.state``)."""

    request_id: str
    bookmark_out: Bookmark | None = None
    served_by: str | None = None


@dataclass
class RequestContext:
    db: Database
    hasher: KeyedHasher
    state: RequestState
    client_ip: str | None
    user_agent: str | None
    bookmark_in: Bookmark | None = field(default=None)

    @property
    def request_id(self) -> str:
        return self.state.request_id

    @property
    def meta(self) -> RequestMeta:
        """Audit metadata: the client IP as a keyed hash, never the address."""
        return RequestMeta(
            ip_hash=self.hasher.ip_hash(self.client_ip) if self.client_ip else None,
            user_agent=self.user_agent[:512] if self.user_agent else None,
            request_id=self.state.request_id,
        )

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        with self.db.write() as uow:
            yield uow
        self._record(uow)

    @contextmanager
    def read(self, fallback: Literal["fast", "fresh"] = "fresh") -> Iterator[UnitOfWork]:
        """Read at the client's bookmark when it sent one, else with ``fallback``.

        Public data falls back to "fast"; a user's own data to "fresh". Authorization
        decisions use :meth:`read_fresh`.
        """
        consistency = self.bookmark_in.encode() if self.bookmark_in else fallback
        with self.db.read(consistency) as uow:
            yield uow
        self._record(uow)

    @contextmanager
    def read_fresh(self) -> Iterator[UnitOfWork]:
        with self.db.read("fresh") as uow:
            yield uow
        self._record(uow)

    def _record(self, uow: UnitOfWork) -> None:
        self.state.served_by = uow.served_by
        if uow.bookmark:
            self.state.bookmark_out = later(self.state.bookmark_out, Bookmark.parse(uow.bookmark))


def valid_request_id(candidate: str | None) -> bool:
    return bool(candidate and _REQUEST_ID.match(candidate))


def client_ip(request: Request, trusted_proxies: list[str]) -> str | None:
    """The peer address, or the first untrusted hop of X-Forwarded-For behind a trusted proxy."""
    peer = request.client.host if request.client else None
    if not peer or not trusted_proxies:
        return peer
    networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not trusted(peer):
        return peer
    hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer
    return peer
