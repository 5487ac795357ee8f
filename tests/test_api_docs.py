"""The API docs work offline and can be used: /docs and /redoc load only assets the app
serves itself, and the OpenAPI document has the Bearer scheme ("Authorize") and the
X-Stich-Bookmark header on the operations that take them (docs/architecture.md)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stich.api.context import BOOKMARK_HEADER
from stich.db import Database
from tests.factories import make_user

ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = doc["paths"][path][method]
    return operation


def test_the_document_has_a_bearer_scheme_on_the_operations_that_take_credentials(
    client: TestClient,
) -> None:
    doc = client.get("/openapi.json").json()
    scheme = doc["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    # Required where a principal is required; optional where one is only used if sent.
    assert _operation(doc, "get", "/api/me")["security"] == [{"bearer": []}]
    assert _operation(doc, "post", "/api/keys")["security"] == [{"bearer": []}]
    assert _operation(doc, "get", "/api/apps/public")["security"] == [{"bearer": []}, {}]
    assert _operation(doc, "get", "/api/apps/{app_id}")["security"] == [{"bearer": []}, {}]
    # No credentials at all: no requirement stated.
    assert "security" not in _operation(doc, "post", "/api/auth/login")
    assert "security" not in _operation(doc, "get", "/healthz")
    secured = [op for item in doc["paths"].values() for op in item.values() if "security" in op]
    assert len(secured) > 30


def test_the_bookmark_header_and_its_error_are_documented(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for method, path in (("get", "/api/apps/public"), ("post", "/api/apps"), ("get", "/api/me")):
        operation = _operation(doc, method, path)
        [header] = [p for p in operation["parameters"] if p["name"] == BOOKMARK_HEADER]
        assert header["in"] == "header" and header["required"] is False
        error = operation["responses"]["400"]["content"]["application/json"]["schema"]
        assert error == {"$ref": "#/components/schemas/ErrorOut"}
        ok = next(r for status, r in operation["responses"].items() if status.startswith("2"))
        assert BOOKMARK_HEADER in ok["headers"]
    assert "parameters" not in _operation(doc, "get", "/healthz")


def test_a_token_pasted_into_authorize_is_accepted(client: TestClient, db: Database) -> None:
    """What Swagger UI sends after "Authorize": the scheme's header, as documented."""
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    user = make_user(db)
    token = user.headers["Authorization"].removeprefix("Bearer ")
    response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def _urls(html: str) -> list[str]:
    quoted = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
    return quoted + re.findall(r"url: '([^']+)'", html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_use_only_assets_the_app_serves(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "http://" not in html and "https://" not in html  # no CDN, no web fonts
    urls = _urls(html)
    assert any(url.endswith(".js") for url in urls)
    for url in urls:
        assert url.startswith("/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        kind = ASSET_TYPES.get(url[url.rfind(".") :])
        if kind is not None:
            assert kind in asset.headers["content-type"], url
        assert len(asset.content) > 0


def test_rate_limits_and_the_body_bound_are_documented(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for method, path, budget in (
        ("post", "/api/auth/login", "signin"),
        ("post", "/api/apps", "write"),
        ("post", "/api/apps/{app_id}/views", "view"),
        ("get", "/api/apps/public", "feed"),
    ):
        operation = _operation(doc, method, path)
        refused = operation["responses"]["429"]
        assert {"Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
            refused["headers"]
        )
        assert refused["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
        assert f"`{budget}` budget" in operation["description"]
        ok = next(r for status, r in operation["responses"].items() if status.startswith("2"))
        assert "RateLimit-Remaining" in ok["headers"]
    # Reads other than the feed are not limited, and say nothing of it.
    assert "429" not in _operation(doc, "get", "/api/me")["responses"]
    assert "413" in _operation(doc, "post", "/api/apps")["responses"]
    assert "413" not in _operation(doc, "get", "/api/me")["responses"]
