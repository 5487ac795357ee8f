"""Secrets over HTTP, on both backends: ownership, reveal, expiry, updates, deletion."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from stich.audit.models import AuditLog
from stich.auth.principal import Principal
from stich.crypto.vault import Vault
from stich.db import Database
from stich.db.base import utcnow
from stich.db.instrumentation import track_queries
from stich.db.pagination import encode_cursor
from stich.secrets.models import UserSecret
from stich.secrets.service import SecretService
from tests.factories import SignedIn, anonymous_token, make_user


def new_value() -> str:
    return "sk-test-" + secrets.token_urlsafe(30)


def create(
    client: TestClient, user: SignedIn, value: str | None = None, **fields: Any
) -> dict[str, Any]:
    body = {
        "provider": "openai",
        "display_name": "My key",
        "value": value or new_value(),
        **fields,
    }
    response = client.post("/api/secrets", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def reveal(client: TestClient, user: SignedIn, secret_id: str) -> Any:
    return client.post(f"/api/secrets/{secret_id}/reveal", headers=user.headers)


def audit_actions(db: Database, secret_id: str) -> list[str]:
    with db.read() as uow:
        return list(
            uow.session.scalars(
                select(AuditLog.action)
                .where(AuditLog.resource_type == "secret", AuditLog.resource_id == secret_id)
                .order_by(AuditLog.created_at, AuditLog.id)
            )
        )


def test_create_shows_metadata_and_preview_never_the_value(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    value = "sk-abcdefghijklmnopqrstuvwxyz0123456789"
    created = create(client, user, value, provider="OpenAI", secret_type="api_key")
    assert created["provider"] == "openai"
    assert created["preview"] == "sk-a…6789"
    assert created["usage_count"] == 0 and created["last_used_at"] is None
    assert created["is_active"] is True and created["is_expired"] is False
    assert "value" not in created and "ciphertext" not in created and "key_id" not in created

    listed = client.get("/api/secrets", headers=user.headers).json()
    assert [item["id"] for item in listed["items"]] == [created["id"]]
    one = client.get(f"/api/secrets/{created['id']}", headers=user.headers)
    assert one.status_code == 200
    for response_text in (str(listed), one.text):
        assert value not in response_text
    assert audit_actions(db, created["id"]) == ["secret.create"]


def test_reveal_returns_value_counts_use_and_audits_once(client: TestClient, db: Database) -> None:
    user = make_user(db)
    value = new_value()
    secret_id = create(client, user, value)["id"]

    response = reveal(client, user, secret_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["value"] == value
    assert body["usage_count"] == 1 and body["last_used_at"] is not None
    assert response.headers["cache-control"] == "no-store"
    assert audit_actions(db, secret_id) == ["secret.create", "secret.reveal"]

    second = reveal(client, user, secret_id).json()
    assert second["usage_count"] == 2
    meta = client.get(f"/api/secrets/{secret_id}", headers=user.headers).json()
    assert meta["usage_count"] == 2 and meta["last_used_at"] == second["last_used_at"]
    assert audit_actions(db, secret_id).count("secret.reveal") == 2


def test_another_users_secret_is_404_for_every_verb(client: TestClient, db: Database) -> None:
    owner, other = make_user(db), make_user(db)
    secret_id = create(client, owner)["id"]
    h = other.headers
    calls = [
        client.get(f"/api/secrets/{secret_id}", headers=h),
        client.post(f"/api/secrets/{secret_id}/reveal", headers=h),
        client.patch(f"/api/secrets/{secret_id}", json={"display_name": "mine"}, headers=h),
        client.patch(f"/api/secrets/{secret_id}", json={"value": new_value()}, headers=h),
        client.patch(f"/api/secrets/{secret_id}", json={"is_active": False}, headers=h),
        client.delete(f"/api/secrets/{secret_id}", headers=h),
    ]
    for response in calls:
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "secret_not_found"
    assert client.get("/api/secrets", headers=h).json()["items"] == []
    # Nothing happened to the owner's secret.
    meta = client.get(f"/api/secrets/{secret_id}", headers=owner.headers).json()
    assert meta["display_name"] == "My key" and meta["usage_count"] == 0 and meta["is_active"]
    assert audit_actions(db, secret_id) == ["secret.create"]


def test_secrets_need_a_signed_in_account(client: TestClient, db: Database) -> None:
    assert client.get("/api/secrets").status_code == 401
    assert client.post("/api/secrets/x/reveal").status_code == 401
    token, _owner_hash = anonymous_token()
    anonymous = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/secrets", headers=anonymous).status_code == 401
    body = {"provider": "openai", "display_name": "k", "value": new_value()}
    assert client.post("/api/secrets", json=body, headers=anonymous).status_code == 401


def test_expired_secret_is_refused(client: TestClient, db: Database) -> None:
    user = make_user(db)
    secret_id = create(client, user, expires_at=(utcnow() + timedelta(days=1)).isoformat())["id"]
    with db.write() as uow:  # let time pass
        uow.session.execute(
            update(UserSecret)
            .where(UserSecret.id == secret_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    response = reveal(client, user, secret_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "secret_expired"
    meta = client.get(f"/api/secrets/{secret_id}", headers=user.headers).json()
    assert meta["is_expired"] is True and meta["usage_count"] == 0
    assert audit_actions(db, secret_id) == ["secret.create"]

    # Extending the expiry makes it usable again.
    later = (utcnow() + timedelta(days=30)).isoformat()
    patched = client.patch(
        f"/api/secrets/{secret_id}", json={"expires_at": later}, headers=user.headers
    )
    assert patched.status_code == 200 and patched.json()["is_expired"] is False
    assert reveal(client, user, secret_id).status_code == 200


def test_expiry_must_be_in_the_future(client: TestClient, db: Database) -> None:
    user = make_user(db)
    past = (utcnow() - timedelta(minutes=1)).isoformat()
    body = {"provider": "openai", "display_name": "k", "value": new_value(), "expires_at": past}
    response = client.post("/api/secrets", json=body, headers=user.headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "expiry_in_past"
    naive = {**body, "expires_at": "2999-01-01T00:00:00"}
    assert client.post("/api/secrets", json=naive, headers=user.headers).status_code == 422


def test_deactivate_reactivate_rename_and_clear_expiry(client: TestClient, db: Database) -> None:
    user = make_user(db)
    later = (utcnow() + timedelta(days=1)).isoformat()
    secret_id = create(client, user, expires_at=later)["id"]
    url = f"/api/secrets/{secret_id}"

    off = client.patch(url, json={"is_active": False}, headers=user.headers)
    assert off.status_code == 200 and off.json()["is_active"] is False
    refused = reveal(client, user, secret_id)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "secret_inactive"

    on = client.patch(
        url,
        json={"is_active": True, "display_name": "  Renamed  ", "expires_at": None},
        headers=user.headers,
    ).json()
    assert on["is_active"] is True and on["display_name"] == "Renamed"
    assert on["expires_at"] is None
    assert reveal(client, user, secret_id).status_code == 200
    assert audit_actions(db, secret_id) == [
        "secret.create",
        "secret.update",
        "secret.update",
        "secret.reveal",
    ]


def test_replacing_the_value_re_encrypts_and_is_audited(client: TestClient, db: Database) -> None:
    user = make_user(db)
    old_value, new = new_value(), new_value()
    created = create(client, user, old_value)
    with db.read() as uow:
        old_blob = uow.session.scalar(
            select(UserSecret.ciphertext).where(UserSecret.id == created["id"])
        )
    patched = client.patch(
        f"/api/secrets/{created['id']}", json={"value": new}, headers=user.headers
    )
    assert patched.status_code == 200
    assert patched.json()["preview"] != created["preview"]
    assert old_value not in patched.text and new not in patched.text
    with db.read() as uow:
        new_blob = uow.session.scalar(
            select(UserSecret.ciphertext).where(UserSecret.id == created["id"])
        )
    assert new_blob != old_blob
    assert reveal(client, user, created["id"]).json()["value"] == new
    assert audit_actions(db, created["id"]) == ["secret.create", "secret.replace", "secret.reveal"]


def test_empty_or_invalid_updates_are_refused(client: TestClient, db: Database) -> None:
    user = make_user(db)
    url = f"/api/secrets/{create(client, user)['id']}"
    for body in ({}, {"display_name": None}, {"value": None}, {"is_active": None}, {"x": 1}):
        assert client.patch(url, json=body, headers=user.headers).status_code == 422


def test_delete_wipes_ciphertext_and_keeps_the_audit_entry(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    secret_id = create(client, user)["id"]
    assert client.delete(f"/api/secrets/{secret_id}", headers=user.headers).status_code == 204
    with db.read() as uow:
        row = uow.session.execute(
            select(
                UserSecret.ciphertext, UserSecret.preview, UserSecret.key_id, UserSecret.deleted_at
            ).where(UserSecret.id == secret_id)
        ).one()
    assert row.ciphertext is None and row.preview is None and row.key_id is None
    assert row.deleted_at is not None
    for response in (
        client.get(f"/api/secrets/{secret_id}", headers=user.headers),
        reveal(client, user, secret_id),
        client.patch(f"/api/secrets/{secret_id}", json={"is_active": True}, headers=user.headers),
        client.delete(f"/api/secrets/{secret_id}", headers=user.headers),
    ):
        assert response.status_code == 404
    assert client.get("/api/secrets", headers=user.headers).json()["items"] == []
    assert audit_actions(db, secret_id) == ["secret.create", "secret.delete"]


def test_value_length_is_bounded_and_never_echoed(client: TestClient, db: Database) -> None:
    user = make_user(db)
    marker = "sk-MARKER-" + "z" * 8200
    for value in (marker, ""):
        body = {"provider": "openai", "display_name": "k", "value": value}
        response = client.post("/api/secrets", json=body, headers=user.headers)
        assert response.status_code == 422
        assert "MARKER" not in response.text
    body = {"provider": "Not A Slug!", "display_name": "k", "value": "sk-MARKER-short"}
    response = client.post("/api/secrets", json=body, headers=user.headers)
    assert response.status_code == 422 and "MARKER" not in response.text


def test_listing_pages_with_a_cursor(client: TestClient, db: Database) -> None:
    user, other = make_user(db), make_user(db)
    ids = [
        create(client, user, provider="anthropic" if i % 2 else "openai")["id"] for i in range(7)
    ]
    create(client, other)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/secrets", params=params, headers=user.headers).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == list(reversed(ids))
    only = client.get("/api/secrets", params={"provider": "anthropic"}, headers=user.headers)
    assert [i["id"] for i in only.json()["items"]] == [ids[5], ids[3], ids[1]]
    bad = client.get("/api/secrets", params={"cursor": "nonsense"}, headers=user.headers)
    assert bad.status_code == 422


def test_listing_is_one_query_whatever_the_page_size(client: TestClient, db: Database) -> None:
    user = make_user(db)
    principal = Principal.user(user.user_id)
    counts = []
    for total in (2, 12):
        while len(client.get("/api/secrets", headers=user.headers).json()["items"]) < total:
            create(client, user)
        with db.read() as uow, track_queries() as stats:
            page = SecretService(uow.session, Vault({})).list(principal, limit=50)
        assert len(page.items) == total
        counts.append(stats.statements)
    assert counts[0] == counts[1] <= 2  # the listing query (and SQLite's BEGIN), never per row


def test_values_never_reach_logs(
    client: TestClient, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    user = make_user(db)
    value = new_value()
    secret_id = create(client, user, value)["id"]
    reveal(client, user, secret_id)
    client.patch(f"/api/secrets/{secret_id}", json={"value": value + "x"}, headers=user.headers)
    client.post(
        "/api/secrets",
        json={"provider": "openai", "display_name": "k", "value": value * 300},
        headers=user.headers,
    )
    client.delete(f"/api/secrets/{secret_id}", headers=user.headers)
    captured = capsys.readouterr()
    assert value not in captured.out and value not in captured.err


def test_malformed_ids_cursors_and_text_are_4xx_not_5xx(client: TestClient, db: Database) -> None:
    user = make_user(db)
    secret_id = create(client, user)["id"]
    for path in ("/api/secrets/a%00b", "/api/secrets/a%00b/reveal", "/api/secrets/%F0%9F%94%91"):
        method = client.post if path.endswith("reveal") else client.get
        assert method(path, headers=user.headers).status_code == 422
    listed = client.get("/api/secrets", params={"limit": 1}, headers=user.headers).json()
    assert listed["next_cursor"] is None
    # A well-formed cursor whose id holds a NUL byte (PostgreSQL text refuses those).
    nul_cursor = encode_cursor("created", [utcnow(), "a\x00b"])
    response = client.get("/api/secrets", params={"cursor": nul_cursor}, headers=user.headers)
    assert response.status_code == 422
    for raw in ('"sk-\\ud800-lone-surrogate"', '"sk-ok"'):
        body = '{"provider": "openai", "display_name": "k\\u0000", "value": ' + raw + "}"
        response = client.post(
            "/api/secrets",
            content=body,
            headers={**user.headers, "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
    patched = client.patch(
        f"/api/secrets/{secret_id}",
        content='{"value": "sk-\\udfff"}',
        headers={**user.headers, "content-type": "application/json"},
    )
    assert patched.status_code == 422
