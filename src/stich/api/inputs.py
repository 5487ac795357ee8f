"""The input contract (stich.validation) applied to URLs: path parameters and query strings.

Typed path parameters (:data:`AppIdPath`, :data:`UsernamePath`) say what an id looks like,
so a malformed one is a 422 before any query runs. Behind them,
:func:`install_input_contract` holds every path and query value of every endpoint, present
and future, to the one-line text rule: a NUL or another control character in a URL is a
422 on both backends (PostgreSQL cannot even compare such a string) instead of a 500, and
the OpenAPI document says so on each string parameter that has no stricter rule.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError

from stich.db.base import ID_LENGTH
from stich.validation import ID_PATTERN, ONE_LINE, ONE_LINE_PATTERN

AppIdPath = Annotated[
    str,
    Path(min_length=1, max_length=ID_LENGTH, pattern=ID_PATTERN, description="The app's id."),
]
UsernamePath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=30,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The username (any case).",
    ),
]


async def refuse_control_characters(request: Request) -> None:
    """Refuse a path or query value that breaks the one-line rule, naming it as FastAPI's
    own validation would (so the answer is the usual 422 ``validation_error``). Async only
    so that it runs on the event loop: a few regex matches are not worth a thread hop."""
    values = [("path", name, value) for name, value in request.path_params.items()]
    values += [("query", name, value) for name, value in request.query_params.multi_items()]
    errors = []
    for location, name, value in values:
        try:
            ONE_LINE.check(name)
            ONE_LINE.check(value)
        except ValueError as exc:
            errors.append({"type": "value_error", "loc": (location, name), "msg": str(exc)})
    if errors:
        raise RequestValidationError(errors)


def install_input_contract(app: FastAPI) -> None:
    """Call before the routers are included: routes copy the app's dependencies then."""
    app.router.dependencies.append(Depends(refuse_control_characters))

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _document_url_rule(generate())  # FastAPI caches it in app.openapi_schema
        return generate()

    app.openapi = openapi  # type: ignore[method-assign]


def _document_url_rule(schema: dict[str, Any]) -> None:
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query"):
                    _add_pattern(parameter.get("schema", {}))


def _add_pattern(schema: dict[str, Any]) -> None:
    for option in schema.get("anyOf", []):
        _add_pattern(option)
    if schema.get("type") == "string" and not {"pattern", "enum", "const"} & schema.keys():
        schema["pattern"] = ONE_LINE_PATTERN


def printable(part: Any) -> Any:
    """A location part of a validation error (a field name, a JSON key) as it can be shown:
    a key the client sent may hold a lone surrogate, which no response could encode."""
    if isinstance(part, str):
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            return part.encode("utf-8", "backslashreplace").decode("utf-8")
    return part


def is_body_parse_error(exc: Exception) -> bool:
    """FastAPI's 400 "error parsing the body": bytes that are not UTF-8, or JSON nested
    past Python's recursion limit. A malformed body, like malformed JSON: a 422."""
    return isinstance(exc.__cause__, ValueError | RecursionError)


def allowed_methods(request: Request) -> str | None:
    """The ``Allow`` header of a 405: the methods the OpenAPI document gives the path.
    Starlette would name the methods of the first partial match only (``OPTIONS /api/me``
    said ``GET``). Where templates overlap (``/apps/bulk-status`` and ``/apps/{app_id}``),
    the one with the fewest parameters is the one meant. None for undocumented paths."""
    path = request.scope["path"]
    matches = [
        (parameters, methods)
        for template, parameters, methods in _documented_methods(request.app)
        if template.fullmatch(path)
    ]
    if not matches:
        return None
    return ", ".join(min(matches, key=lambda match: match[0])[1])


_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


_Documented = list[tuple[re.Pattern[str], int, list[str]]]


def _documented_methods(app: FastAPI) -> _Documented:
    cached: _Documented | None = getattr(app.state, "documented_methods", None)
    if cached is None:
        cached = []
        for template, item in app.openapi().get("paths", {}).items():
            regex = re.sub(r"\\{[^}/]+\\}", "[^/]+", re.escape(template))
            methods = sorted(method.upper() for method in item if method in _METHODS)
            cached.append((re.compile(regex), template.count("{"), methods))
        app.state.documented_methods = cached
    return cached
