"""ASGI middleware: request id, bookmark header, structured access log with DB stats."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stich.api.context import BOOKMARK_HEADER, REQUEST_ID_HEADER, RequestState, valid_request_id
from stich.db.instrumentation import track_queries
from stich.observability.metrics import RequestRecord

access_log = structlog.get_logger("stich.access")
# Request ids need to be unique, not secret: a PRNG seeded from the OS per process
# (uvicorn starts its workers fresh) instead of uuid4's system call per request.
_request_ids = random.Random(os.urandom(16))  # noqa: S311


def new_request_id() -> str:
    return f"{_request_ids.getrandbits(128):032x}"


_REQUEST_ID_KEY = REQUEST_ID_HEADER.lower().encode()
STATEMENTS_HEADER = "X-Stich-Statements"
# What a browser on another origin may send and read (CORS): the bookmark is read from
# one response and sent back on the next, the request id is for support.
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", BOOKMARK_HEADER, REQUEST_ID_HEADER]
CORS_EXPOSED_HEADERS = [
    BOOKMARK_HEADER,
    REQUEST_ID_HEADER,
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
]


def install_cors(app: Starlette, origins: list[str]) -> None:
    """CORS for STICH_CORS_ORIGINS; nothing at all (no cost) when none are set. Add it
    last, so it is the outermost middleware: preflights are answered before any limit,
    and refusals (401, 429) still carry the headers a browser needs to read them."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        # Credentials travel in the Authorization header, never in cookies.
        allow_credentials=False,
        max_age=600,
    )


class RequestMiddleware:
    def __init__(self, app: ASGIApp, *, statements_header: bool = False) -> None:
        self.app = app
        # X-Stich-Statements tells how much SQL a request ran: a development aid only,
        # since in production it tells an attacker which requests are costly.
        self.statements_header = statements_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = next((v for k, v in scope["headers"] if k == _REQUEST_ID_KEY), b"")
        candidate = incoming.decode("latin-1")
        state = RequestState(
            request_id=candidate if valid_request_id(candidate) else new_request_id()
        )
        scope.setdefault("state", {})["stich"] = state
        status = 500
        started = time.perf_counter()
        # Captured now: routing below rewrites scope["app"] and scope["root_path"] in place.
        observer = _request_observer(scope.get("app"))
        root_path = scope.get("root_path", "")

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = state.request_id
                if state.bookmark_out is not None:
                    headers[BOOKMARK_HEADER] = state.bookmark_out.encode()
                if state.served_by:
                    headers["X-Stich-Served-By"] = state.served_by
                if self.statements_header:  # spots N+1 queries while developing
                    headers[STATEMENTS_HEADER] = str(stats.statements)
            await send(message)

        with track_queries() as stats:
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
                if observer is not None:
                    observer(
                        RequestRecord(
                            method=scope["method"],
                            path=scope["path"],
                            mounted_route=_mounted_route(scope, root_path),
                            status=status,
                            seconds=time.perf_counter() - started,
                            db_statements=stats.statements,
                            db_seconds=stats.seconds,
                        )
                    )
                access_log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    request_id=state.request_id,
                    db_statements=stats.statements,
                    db_ms=round(stats.seconds * 1000, 2),
                    served_by=state.served_by,
                    bookmark=state.bookmark_out.encode() if state.bookmark_out else None,
                )


def _request_observer(app: Any) -> Callable[[RequestRecord], None] | None:
    """The metrics hook an app installed (``app.state.request_observer``), if any."""
    # State's own dict: a missing attribute raises (and costs) inside getattr.
    values: dict[str, Any] = getattr(getattr(app, "state", None), "_state", {})
    observer: Callable[[RequestRecord], None] | None = values.get("request_observer")
    return observer


def _mounted_route(scope: Scope, root_path: str) -> str | None:
    """For a request served by a mounted app (the Studio at /admin): mount path + the
    mounted route's template, e.g. ``/admin/{identity}/list``. None otherwise."""
    mount_prefix: str = scope.get("root_path", "")[len(root_path) :]
    route_path = getattr(scope.get("route"), "path", None)
    if not mount_prefix or not isinstance(route_path, str):
        return None
    return f"{mount_prefix}{route_path}"
