"""ASGI middleware: request id, bookmark header, structured access log with DB stats."""

from __future__ import annotations

import time
import uuid

import structlog
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stich.api.context import BOOKMARK_HEADER, REQUEST_ID_HEADER, RequestState, valid_request_id
from stich.db.instrumentation import track_queries

access_log = structlog.get_logger("stich.access")


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = (
            dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        )
        state = RequestState(
            request_id=incoming if valid_request_id(incoming) else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["stich"] = state
        status = 500
        started = time.perf_counter()

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
            await send(message)

        with track_queries() as stats:
            try:
                await self.app(scope, receive, send_with_headers)
            finally:
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
                )
