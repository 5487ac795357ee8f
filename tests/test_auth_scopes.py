"""API key scopes are enforced on the apps and secrets routers, not only on account ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stich.config import Settings
from tests.auth_support import auth_settings, bearer, register


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def _key(client: TestClient, headers: dict[str, str], scopes: list[str]) -> dict[str, str]:
    response = client.post("/api/keys", json={"name": "bot", "scopes": scopes}, headers=headers)
    assert response.status_code == 201, response.text
    return bearer(response.json()["key"])


def test_apps_need_the_apps_scopes(client: TestClient) -> None:
    account = register(client)
    reader = _key(client, account.headers, ["apps:read"])
    writer = _key(client, account.headers, ["apps:read", "apps:write"])
    secrets_only = _key(client, account.headers, ["secrets:read"])

    refused = client.post("/api/apps", json={"title": "Nope"}, headers=reader)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    created = client.post("/api/apps", json={"title": "Yes"}, headers=writer)
    assert created.status_code == 201, created.text
    app_id = created.json()["id"]

    assert client.get(f"/api/apps/{app_id}", headers=reader).status_code == 200
    assert client.get("/api/me/apps", headers=reader).status_code == 200
    assert client.get(f"/api/apps/{app_id}", headers=secrets_only).status_code == 403
    deleted = client.delete(f"/api/apps/{app_id}", headers=reader)
    assert deleted.status_code == 403
    assert client.get(f"/api/apps/{app_id}", headers=account.headers).status_code == 200


def test_secrets_need_the_secrets_scopes(client: TestClient) -> None:
    account = register(client)
    apps_key = _key(client, account.headers, ["apps:read", "apps:write"])
    reader = _key(client, account.headers, ["secrets:read"])
    writer = _key(client, account.headers, ["secrets:read", "secrets:write"])
    body = {"provider": "openai", "display_name": "main", "value": "sk-test-1234567890abcdef"}

    assert client.post("/api/secrets", json=body, headers=apps_key).status_code == 403
    assert client.post("/api/secrets", json=body, headers=reader).status_code == 403
    created = client.post("/api/secrets", json=body, headers=writer)
    assert created.status_code == 201, created.text
    secret_id = created.json()["id"]

    assert client.get("/api/secrets", headers=apps_key).status_code == 403
    assert client.get("/api/secrets", headers=reader).status_code == 200
    # Revealing reads the value: it needs secrets:read, and apps scopes are not enough.
    assert client.post(f"/api/secrets/{secret_id}/reveal", headers=apps_key).status_code == 403
    revealed = client.post(f"/api/secrets/{secret_id}/reveal", headers=reader)
    assert revealed.status_code == 200, revealed.text
    assert client.delete(f"/api/secrets/{secret_id}", headers=reader).status_code == 403
