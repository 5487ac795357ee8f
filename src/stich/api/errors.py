"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stich.api.inputs import allowed_methods, is_body_parse_error, printable
from stich.db.faults import translate_fault
from stich.errors import StichError

log = structlog.get_logger("stich.api")

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


_GENERIC_MEANINGS = {
    400: "The request breaks a rule.",
    401: "No valid credentials were sent.",
    403: "The caller is known but may not do this.",
    404: "No such resource, or one the caller may not see.",
    409: "The change conflicts with the current state; details say more.",
    422: "The request is malformed; the message names the parameter.",
    423: "The account is locked for a while; see Retry-After.",
    429: "Too many attempts; see Retry-After.",
    503: "A dependency is not available; the message says which.",
}


def error_responses(
    *statuses: int, meanings: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an endpoint can answer (one shared body
    model); ``meanings`` gives an area's own wording for some statuses."""
    wording = {**_GENERIC_MEANINGS, **(meanings or {})}
    return {s: {"model": ErrorOut, "description": wording[s]} for s in statuses}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _stich_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StichError)
    return JSONResponse(exc.to_body(), status_code=exc.status, headers=exc.headers or None)


def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never echo the rejected input: it may be a password or a secret value.
    errors = [
        {
            "loc": [printable(part) for part in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return JSONResponse(
        error_body("validation_error", message, {"errors": errors}), status_code=422
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and is_body_parse_error(exc):
        message = "body: must be JSON encoded as UTF-8"
        errors = [{"loc": ["body"], "msg": "must be JSON encoded as UTF-8", "type": "json_invalid"}]
        return JSONResponse(
            error_body("validation_error", message, {"errors": errors}), status_code=422
        )
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers or None
    )


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """A busy, full or read-only database is a 503 to retry (stich.db.faults); other
    driver errors outside a unit of work (reads) are unexpected."""
    fault = translate_fault(exc)
    if fault is None:
        return _unexpected_error(request, exc)
    return _stich_error(request, fault)


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    state = getattr(request.state, "stich", None)
    request_id = getattr(state, "request_id", None)
    log.exception("unhandled error", request_id=request_id, error_type=type(exc).__name__)
    sentry = sys.modules.get("sentry_sdk")  # only when installed and imported (init_sentry)
    if sentry is not None:
        sentry.capture_exception(exc)  # a no-op unless Sentry was initialised
    return JSONResponse(
        error_body(
            "internal_error",
            "something went wrong on our side; quote the request id when reporting it",
            {"request_id": request_id},
        ),
        status_code=500,
    )


class UnexpectedErrorMiddleware:
    """Answer an unhandled exception with the JSON 500 and keep the connection open.

    Starlette's own last resort (ServerErrorMiddleware) re-raises after sending its 500,
    and uvicorn then closes the keep-alive connection, so the client's next request on
    it fails with a reset. Here the exception ends with the response. Only when part of
    a response has already gone out is it re-raised: closing is then the only honest end.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if response_started:
                raise
            response = _unexpected_error(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Exception handlers, and the 500 middleware: call it before adding the app's other
    middleware, so this one is innermost and theirs (request id, access log) see its 500."""
    app.add_exception_handler(StichError, _stich_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    # Still the last resort for an exception raised in an outer middleware.
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(UnexpectedErrorMiddleware)
