"""Responses serialized once, in the endpoint's own thread.

A sync endpoint that returns a model makes FastAPI validate it again against the
``response_model`` in a second thread-pool hand-off before serializing it. The model was
built (and validated) by the endpoint, so a hot endpoint returns :func:`model_response`
instead: pydantic's Rust serializer writes the JSON bytes directly, as FastAPI would
(``by_alias``), with no second validation and no extra hop. Keep ``response_model`` on
the route: the OpenAPI document still describes the body (tests/test_http_layer.py
checks the bodies against it).
"""

from __future__ import annotations

from pydantic import BaseModel
from starlette.responses import Response


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as an ``application/json`` response, serialized exactly once."""
    return Response(
        model.__pydantic_serializer__.to_json(model, by_alias=True),
        status_code=status_code,
        media_type="application/json",
    )
