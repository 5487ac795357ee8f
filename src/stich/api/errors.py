"""One error shape for every failure: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

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
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    return JSONResponse(
        error_body("validation_error", message, {"errors": errors}), status_code=422
    )


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(code, str(exc.detail)),
        status_code=exc.status_code,
        headers=dict(exc.headers) if exc.headers else None,
    )


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    state = getattr(request.state, "stich", None)
    request_id = getattr(state, "request_id", None)
    log.exception("unhandled error", request_id=request_id, error_type=type(exc).__name__)
    return JSONResponse(
        error_body(
            "internal_error",
            "something went wrong on our side; quote the request id when reporting it",
            {"request_id": request_id},
        ),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StichError, _stich_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
