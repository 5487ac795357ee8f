"""Request limits (docs/operations.md, "Rate limits and request limits"): a body over
STICH_MAX_BODY_BYTES is a 413 before it is read whole (declared or streamed) and nothing is
written; a query string over STICH_MAX_QUERY_STRING_BYTES is a 414; deep JSON stays a 422."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from stich.api.app import create_app
from stich.apps.models import App
from stich.db import Database
from tests.auth_support import FAST_ARGON2, Account, register
from tests.conftest import make_settings

MAX_BODY = 4096


@pytest.fixture
def client(db: Database, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(
        database_url,
        tmp_path,
        **FAST_ARGON2,
        max_body_bytes=MAX_BODY,
        max_query_string_bytes=512,
        rate_limit_enabled=True,  # the rate limiter reads sign-in bodies: bounded too
    )
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def user(client: TestClient) -> Account:
    return register(client)


def app_count(db: Database) -> int:
    with db.read() as uow:
        return uow.session.scalar(select(func.count()).select_from(App)) or 0


def app_body(size: int) -> bytes:
    body = json.dumps({"title": "Big", "description": "x" * size}).encode()
    return body


def assert_too_large(response_status: int, body: dict[str, object]) -> None:
    assert response_status == 413
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == "payload_too_large" and error["details"] == {"max_bytes": MAX_BODY}


def test_a_body_under_the_limit_is_served(client: TestClient, user: Account) -> None:
    response = client.post(
        "/api/apps",
        content=app_body(1000),
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_a_declared_oversized_body_is_refused_and_nothing_is_written(
    client: TestClient, user: Account, db: Database
) -> None:
    before = app_count(db)
    response = client.post(
        "/api/apps",
        content=app_body(MAX_BODY),
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert_too_large(response.status_code, response.json())
    assert "X-Request-ID" in response.headers  # still answered through the request middleware
    assert app_count(db) == before


def test_a_streamed_oversized_body_is_refused_and_nothing_is_written(
    client: TestClient, user: Account, db: Database
) -> None:
    body = app_body(MAX_BODY * 4)
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    before = app_count(db)
    response = client.post(
        "/api/apps",
        content=iter(chunks),  # no Content-Length: chunked, counted as it arrives
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_too_large(response.status_code, response.json())
    assert app_count(db) == before


def test_an_oversized_sign_in_body_is_refused_before_the_rate_limiter_reads_it(
    client: TestClient,
) -> None:
    body = json.dumps({"email": "a@example.test", "password": "p" * MAX_BODY}).encode()
    response = client.post(
        "/api/auth/login", content=iter([body]), headers={"Content-Type": "application/json"}
    )
    assert_too_large(response.status_code, response.json())


def test_a_long_query_string_is_refused(client: TestClient) -> None:
    assert client.get("/api/apps/public", params={"q": "word"}).status_code == 200
    response = client.get("/api/apps/public", params={"q": "w" * 600})
    assert response.status_code == 414
    assert response.json()["error"]["code"] == "uri_too_long"


def test_deep_json_nesting_is_still_refused(client: TestClient, user: Account) -> None:
    deep = "[" * 2000 + "]" * 2000
    response = client.post(
        "/api/apps",
        content=deep.encode(),
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
