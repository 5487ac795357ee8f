"""Request limits: bodies and query strings beyond a bound are refused before they are read.

A body whose ``Content-Length`` is over ``STICH_MAX_BODY_BYTES`` is a 413 at once, and
nothing of it is read; a body sent without a length (chunked) is counted as it streams
and refused as soon as it passes the bound, so no request holds more than the bound in
memory. A query string over ``STICH_MAX_QUERY_STRING_BYTES`` is a 414. Both answers carry
the JSON error body. (JSON nesting depth has its own bound where bodies are parsed.)
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stich.api.errors import error_body
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher

_CONTENT_LENGTH = b"content-length"


class _BodyTooLarge(Exception):
    """Raised into the endpoint's body read once the 413 has been sent."""


class RequestLimitsMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, max_query_string_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.max_query = max_query_string_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope.get("query_string", b"")) > self.max_query:
            await self._too_long(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == _CONTENT_LENGTH), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._too_large(scope, receive, send)
            return
        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    refused = True
                    await self._too_large(scope, receive, send)
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # after the 413, whatever the endpoint makes of it is dropped
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body(
            "payload_too_large",
            f"the request body is larger than {self.max_body} bytes",
            {"max_bytes": self.max_body},
        )
        # The rest of the body is not read: the connection closes rather than drain it.
        await JSONResponse(body, status_code=413, headers={"Connection": "close"})(
            scope, receive, send
        )

    async def _too_long(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = error_body(
            "uri_too_long",
            f"the query string is longer than {self.max_query} bytes",
            {"max_bytes": self.max_query},
        )
        await JSONResponse(body, status_code=414)(scope, receive, send)


def request_guards(settings: Settings) -> list[Middleware]:
    """The request limits, then the rate limits, as a Starlette middleware list (outermost
    first) for an app built without :func:`stich.api.app.create_app` (``stich studio``)."""
    from stich.api.ratelimit import RateLimitMiddleware

    guards = [
        Middleware(
            RequestLimitsMiddleware,
            max_body_bytes=settings.max_body_bytes,
            max_query_string_bytes=settings.max_query_string_bytes,
        )
    ]
    if settings.rate_limit_enabled:
        hasher = KeyedHasher(settings.server_key_bytes())
        guards.append(Middleware(RateLimitMiddleware, settings=settings, hasher=hasher))
    return guards
