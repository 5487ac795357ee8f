"""API documentation that works offline and can be used.

Swagger UI (``/docs``) and ReDoc (``/redoc``) load their JavaScript and CSS from the app
itself (``/docs/assets``), from the files the ``fastapi-offline`` package ships (FastAPI's
"self-hosting JavaScript and CSS for docs"): no CDN, so the pages work on a machine
without internet and leak no visitor to a third party.

The OpenAPI document is completed here, with no cost per request:

- a Bearer security scheme, required on the operations whose dependencies require a
  principal and optional (``[{bearer: []}, {}]``) on those that only use one when sent,
  so "Authorize" in Swagger UI works with a session token or an API key;
- the optional ``X-Stich-Bookmark`` request header (and its 400 ``invalid_bookmark``) on
  every operation that takes a request context, and the response header on its 2xx;
- on each operation the rate limiter counts (:func:`stich.api.ratelimit.classify`), its
  budget, the ``RateLimit-*`` headers and the 429 with ``Retry-After``; and the 413 of a
  body past ``STICH_MAX_BODY_BYTES`` on every operation that takes a body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import fastapi.routing
import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.routing import APIRoute, APIRouter
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

from stich.api.context import BOOKMARK_HEADER
from stich.api.deps import get_context
from stich.api.ratelimit import classify
from stich.auth.dependencies import principal_dependency, require_principal, require_user

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/docs/assets"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
SCHEME = "bearer"

BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": (
        "`Authorization: Bearer <token>`: an access token from `POST /api/auth/login` "
        "(or register / refresh), an API key from `POST /api/keys`, or an anonymous "
        "token from `POST /api/auth/anonymous`."
    ),
}
BOOKMARK_PARAMETER: dict[str, Any] = {
    "name": BOOKMARK_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Read-your-writes: send back the `X-Stich-Bookmark` value of an earlier response "
        "unchanged; this request then sees that response's writes (docs/replicas.md). "
        "Opaque; a value this server did not issue is a 400 `invalid_bookmark`."
    ),
    "schema": {"type": "string", "maxLength": 128},
}
BOOKMARK_RESPONSE_HEADER: dict[str, Any] = {
    "description": "The read bookmark after this request's writes (or the one sent).",
    "schema": {"type": "string"},
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_INTEGER = {"schema": {"type": "integer", "minimum": 0}}
RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Limit": {"description": "Requests allowed in the window.", **_INTEGER},
    "RateLimit-Remaining": {"description": "Requests left in the window.", **_INTEGER},
    "RateLimit-Reset": {"description": "Seconds until the window frees up.", **_INTEGER},
}


def install_docs(app: FastAPI) -> None:
    """Serve /docs and /redoc from local assets and complete the OpenAPI document.
    The app must be created with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # The token survives a reload of the page (kept in this browser only).
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_http_surface(app, generate())  # cached in app.openapi_schema
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _document_http_surface(app: FastAPI, schema: dict[str, Any]) -> None:
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = BEARER_SCHEME
    paths = schema.get("paths", {})
    for route in _api_routes(app):
        calls = set(_calls(route.dependant))
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            if calls & {require_principal, require_user}:
                operation["security"] = [{SCHEME: []}]
            elif principal_dependency in calls:
                operation["security"] = [{SCHEME: []}, {}]  # credentials are optional
            if get_context in calls:
                _document_bookmark(operation)
            budget = classify(method, route.path_format)
            if budget is not None:
                _document_rate_limit(operation, str(budget))
            if "requestBody" in operation:
                _document_error(operation, "413", "The body is larger than the server accepts.")


def _document_bookmark(operation: dict[str, Any]) -> None:
    parameters = operation.setdefault("parameters", [])
    if not any(p.get("name") == BOOKMARK_HEADER for p in parameters):
        parameters.append(dict(BOOKMARK_PARAMETER))
    _document_error(operation, "400", "A malformed request header (`invalid_bookmark`).")
    for status, response in operation["responses"].items():
        if status.startswith("2"):
            response.setdefault("headers", {})[BOOKMARK_HEADER] = BOOKMARK_RESPONSE_HEADER


def _document_rate_limit(operation: dict[str, Any], budget: str) -> None:
    setting = f"STICH_RATE_LIMIT_{budget.upper()}"
    operation["description"] = (
        operation.get("description", "")
        + f"\n\nRate limited: the `{budget}` budget (`{setting}`), per client and credential."
    ).strip()
    responses = operation.setdefault("responses", {})
    for status, response in responses.items():
        if status.startswith("2"):
            response.setdefault("headers", {}).update(RATE_LIMIT_HEADERS)
    responses["429"] = {
        "description": f"Too many requests: the `{budget}` budget is spent (`rate_limited`).",
        "headers": {
            "Retry-After": {"description": "Seconds to wait before trying again.", **_INTEGER},
            **RATE_LIMIT_HEADERS,
        },
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def _document_error(operation: dict[str, Any], status: str, description: str) -> None:
    operation.setdefault("responses", {}).setdefault(
        status, {"description": description, "content": {"application/json": {"schema": ERROR_REF}}}
    )


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The documented API routes with their full paths. FastAPI >= 0.16x keeps included
    routers as branches and walks them with ``iter_route_contexts`` (as its own OpenAPI
    generation does); before, ``app.routes`` held every route already prefixed."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: Iterable[Any] = contexts(app.routes) if contexts is not None else app.routes
    for route in routes:
        original = getattr(route, "original_route", route)
        if isinstance(original, APIRoute) and route.include_in_schema:
            yield route


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every dependency callable a route runs, its own sub-dependencies included."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def document_in_router_order(app: FastAPI, routers: list[APIRouter], prefix: str) -> None:
    """List the paths of ``routers`` in the OpenAPI document in the order given, whatever
    order they were included in for matching (``stich.api.app.MATCH_ORDER``); other paths
    keep their places. Call after including the routers."""
    rank: dict[str, int] = {}
    for router in routers:
        for route in router.routes:
            rank.setdefault(prefix + getattr(route, "path", ""), len(rank))
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # cached in app.openapi_schema: ordered once
            paths: dict[str, Any] = schema.get("paths", {})
            ranked = iter(sorted((p for p in paths if p in rank), key=rank.__getitem__))
            order = [next(ranked) if path in rank else path for path in paths]
            schema["paths"] = {path: paths[path] for path in order}
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]
