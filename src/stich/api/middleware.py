"""ASGI middleware: request id, bookmark header, structured access log with DB stats."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

import structlog
from starlette.datastructures import MutableHeaders
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


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
                # Statement count of this request: lets tests and operators spot N+1 queries.
                headers["X-Stich-Statements"] = str(stats.statements)
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
