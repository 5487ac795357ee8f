"""The HTTP surface a deployment meets: HEAD probes for load balancers, CORS for browser
front ends on other origins (STICH_CORS_ORIGINS, none by default), and the statement
count header only in development (it tells an attacker which requests are costly)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stich.api.app import create_app
from stich.api.context import BOOKMARK_HEADER, REQUEST_ID_HEADER
from stich.config import SettingsError
from stich.db import Database
from tests.conftest import make_settings
from tests.factories import make_user

FRONT = "https://front.example.com"
STATEMENTS = "X-Stich-Statements"


@contextmanager
def app_client(
    db: Database, database_url: str, tmp_path: Path, **overrides: object
) -> Iterator[TestClient]:
    settings = make_settings(database_url, tmp_path, **overrides)
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_answer_head(client: TestClient, path: str) -> None:
    response = client.head(path)
    assert response.status_code == 200
    assert response.content == b""
    assert client.get(path).status_code == 200


def test_no_cors_by_default(client: TestClient) -> None:
    response = client.get("/api/apps/public", headers={"Origin": FRONT})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    preflight = client.options(
        "/api/apps", headers={"Origin": FRONT, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_cors_for_the_configured_origins(db: Database, database_url: str, tmp_path: Path) -> None:
    user = make_user(db)
    with app_client(
        db, database_url, tmp_path, cors_origins=f"{FRONT}/, http://localhost:5173"
    ) as client:
        preflight = client.options(
            "/api/apps",
            headers={
                "Origin": FRONT,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, x-stich-bookmark",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == FRONT
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"authorization", "content-type", "x-stich-bookmark"} <= {
            part.strip() for part in allowed.split(",")
        }
        assert "access-control-allow-credentials" not in preflight.headers

        created = client.post(
            "/api/apps",
            json={"title": "Cross Origin"},
            headers={**user.headers, "Origin": FRONT},
        )
        assert created.status_code == 201, created.text
        assert created.headers["access-control-allow-origin"] == FRONT
        exposed = {
            part.strip().lower()
            for part in created.headers["access-control-expose-headers"].split(",")
        }
        assert {BOOKMARK_HEADER.lower(), REQUEST_ID_HEADER.lower()} <= exposed
        assert created.headers[BOOKMARK_HEADER]

        # A refusal still carries the headers, so the page can read the error.
        refused = client.get("/api/me", headers={"Origin": "http://localhost:5173"})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "http://localhost:5173"

        # Any other origin gets nothing.
        other = client.get("/api/apps/public", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        denied = client.options(
            "/api/apps",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert denied.status_code == 400
        assert "access-control-allow-origin" not in denied.headers


@pytest.mark.parametrize("value", ["front.example.com", "https://a.example/path", "ftp://a.b"])
def test_a_cors_origin_that_is_not_an_origin_is_a_settings_error(
    tmp_path: Path, value: str
) -> None:
    with pytest.raises(SettingsError, match="CORS_ORIGINS"):
        make_settings("sqlite:///" + str(tmp_path / "x.db"), tmp_path, cors_origins=value)


def test_statement_count_header_only_in_development(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    user = make_user(db)
    with app_client(db, database_url, tmp_path) as client:  # STICH_ENV=test
        response = client.get("/api/me", headers=user.headers)
        assert response.status_code == 200 and STATEMENTS not in response.headers
    for env in ("production", "development"):
        with app_client(db, database_url, tmp_path, env=env) as client:
            response = client.get("/api/me", headers=user.headers)
            assert response.status_code == 200
            if env == "production":
                assert STATEMENTS not in response.headers
            else:
                assert int(response.headers[STATEMENTS]) >= 1
