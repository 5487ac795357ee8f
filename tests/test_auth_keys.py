"""API keys: shown once, previewed after, scoped, expiring, capped, counted, revocable."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from stich.auth.models import ApiKey
from stich.auth.usage import KeyUsage, key_usage_for
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from tests.auth_support import Account, audit_actions, auth_settings, bearer, register


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path, max_api_keys_per_user=3)


def create_key(client: TestClient, account: Account, **body: object) -> dict[str, object]:
    response = client.post("/api/keys", json={"name": "script", **body}, headers=account.headers)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def test_key_is_shown_once_and_previewed_after(client: TestClient, db: Database) -> None:
    account = register(client)
    created = create_key(client, account, name="CI deploys", expires_in_days=30)
    key = str(created["key"])
    assert key.startswith("stich_sk_")
    preview = str(created["preview"])
    assert preview.startswith(key[:13]) and preview.endswith(key[-4:]) and len(preview) < 24
    assert created["scopes"] == ["apps:read", "apps:write"]
    expires = created["expires_at"]
    assert isinstance(expires, str) and expires > utcnow().isoformat()

    listed = client.get("/api/keys", headers=account.headers)
    assert listed.status_code == 200
    assert key not in listed.text
    [item] = listed.json()["items"]
    assert item["id"] == created["id"] and item["preview"] == preview and "key" not in item
    with db.read() as uow:
        stored = uow.session.scalars(select(ApiKey)).one()
        assert stored.key_hash != key and len(stored.key_hash) == 64
    assert "auth.key_created" in audit_actions(client, account)


def test_key_authenticates_with_its_scopes(client: TestClient) -> None:
    account = register(client)
    apps_only = bearer(str(create_key(client, account)["key"]))
    reader = bearer(str(create_key(client, account, scopes=["account:read"])["key"]))
    refused = client.get("/api/me", headers=apps_only)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    me = client.get("/api/me", headers=reader)
    assert me.status_code == 200 and me.json()["id"] == account.user_id
    assert client.patch("/api/me", json={"bio": "x"}, headers=reader).status_code == 403


def test_scopes_are_validated(client: TestClient) -> None:
    account = register(client)
    for scopes in [[], ["root"], ["apps:read"] * 30]:
        response = client.post(
            "/api/keys", json={"name": "k", "scopes": scopes}, headers=account.headers
        )
        assert response.status_code == 422, scopes
    dupes = create_key(client, account, scopes=["apps:read", "apps:read", "account:read"])
    assert dupes["scopes"] == ["account:read", "apps:read"]


def stored_usage(db: Database, key_id: str) -> int:
    with db.read() as uow:
        stored = uow.session.get(ApiKey, key_id)
        assert stored is not None
        return stored.usage_count


def test_usage_is_counted_without_a_write_per_request(client: TestClient, db: Database) -> None:
    account = register(client)
    created = create_key(client, account, scopes=["account:read"])
    key_id, headers = str(created["id"]), bearer(str(created["key"]))
    for _ in range(5):
        assert client.get("/api/me", headers=headers).status_code == 200

    # The first use is written at once; the rest wait for the flusher.
    assert stored_usage(db, key_id) == 1
    listed = client.get("/api/keys", headers=account.headers).json()["items"]
    assert listed[0]["usage_count"] == 5  # this process adds what it has not written yet
    usage = key_usage_for(db)
    assert usage.pending(key_id) == 4 and usage.flusher_running

    # The key is not used again: its pending uses are still written (the flusher's job
    # once a minute, run here at once), so a crash loses at most a minute of them.
    assert usage.flush() == 4
    assert stored_usage(db, key_id) == 5 and usage.pending(key_id) == 0


def test_pending_uses_reach_the_database_without_another_request(
    client: TestClient, db: Database
) -> None:
    account = register(client)
    key_id = str(create_key(client, account)["id"])
    usage = KeyUsage(db, interval_seconds=0.01)
    usage.record(key_id)
    usage.record(key_id)
    usage.record(key_id)  # the first at once, the others pending
    for _ in range(1000):  # the background flusher writes them; wait for it (at most ~10 s)
        if stored_usage(db, key_id) == 3 and not usage.flusher_running:
            break
        time.sleep(0.01)
    assert stored_usage(db, key_id) == 3 and usage.pending(key_id) == 0
    assert not usage.flusher_running  # it stops when nothing is pending


def test_expired_and_revoked_keys_are_refused(client: TestClient, db: Database) -> None:
    account = register(client)
    expiring = create_key(client, account, scopes=["account:read"], expires_in_days=1)
    revoking = create_key(client, account, scopes=["account:read"])
    with db.write() as uow:
        uow.session.execute(
            update(ApiKey)
            .where(ApiKey.id == expiring["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = client.get("/api/me", headers=bearer(str(expiring["key"])))
    assert response.status_code == 401 and response.json()["error"]["code"] == "token_expired"

    assert client.delete(f"/api/keys/{revoking['id']}", headers=account.headers).status_code == 204
    response = client.get("/api/me", headers=bearer(str(revoking["key"])))
    assert response.status_code == 401
    assert client.delete(f"/api/keys/{revoking['id']}", headers=account.headers).status_code == 404
    assert client.get("/api/keys", headers=account.headers).json()["items"] == []
    assert "auth.key_revoked" in audit_actions(client, account)


def test_cap_per_user_counts_only_usable_keys(client: TestClient) -> None:
    account = register(client)
    keys = [create_key(client, account) for _ in range(3)]
    over = client.post("/api/keys", json={"name": "one too many"}, headers=account.headers)
    assert over.status_code == 409
    assert over.json()["error"]["code"] == "too_many_api_keys"
    client.delete(f"/api/keys/{keys[0]['id']}", headers=account.headers)
    create_key(client, account)
    # Another user has their own allowance.
    create_key(client, register(client))


def test_cap_holds_under_concurrent_creates(client: TestClient, db: Database) -> None:
    account = register(client)
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def create() -> None:
        barrier.wait()
        response = client.post("/api/keys", json={"name": "race"}, headers=account.headers)
        statuses.append(response.status_code)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201, 201, 201, 409, 409, 409]
    with db.read() as uow:
        assert len(uow.session.scalars(select(ApiKey.id)).all()) == 3


def test_a_user_cannot_list_or_revoke_another_users_keys(client: TestClient) -> None:
    alice = register(client)
    bob = register(client)
    bobs = create_key(client, bob, scopes=["account:read"])
    assert client.get("/api/keys", headers=alice.headers).json()["items"] == []
    response = client.delete(f"/api/keys/{bobs['id']}", headers=alice.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "api_key_not_found"
    assert client.get("/api/me", headers=bearer(str(bobs["key"]))).status_code == 200
