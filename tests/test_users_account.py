"""The signed-in account: profile, password change, deletion, export and its audit trail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.auth.models import ApiKey, UserSession
from stich.auth.principal import Principal
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.db.instrumentation import track_queries
from stich.gallery.models import Star
from stich.secrets.models import UserSecret
from stich.users.models import User
from stich.users.service import UserService, tombstone_email
from tests.auth_support import (
    PASSWORD,
    Account,
    audit_actions,
    auth_settings,
    bearer,
    login,
    login_response,
    register,
)

NEW_PASSWORD = "a different long passphrase"
CIPHERTEXT = b"\x01k1\x00" + b"not-really-encrypted-but-secret-bytes"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def patch_me(client: TestClient, account: Account, body: dict[str, Any]) -> Any:
    return client.patch("/api/me", json=body, headers=account.headers)


# -- profile ------------------------------------------------------------------------------


def test_profile_update_changes_only_what_is_sent(client: TestClient, db: Database) -> None:
    account = register(client)
    response = patch_me(
        client,
        account,
        {
            "display_name": "  Ada   Lovelace ",
            "username": "Ada",
            "bio": "Analyst",
            "avatar_url": "https://img.example.test/ada.png",
            "preferences": {"editor": {"tabs": 2}, "beta": True},
            "theme": "dark",
            "timezone": "Europe/London",
        },
    )
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["display_name"] == "Ada Lovelace" and me["username"] == "ada"
    assert me["preferences"] == {"editor": {"tabs": 2}, "beta": True}
    assert (me["theme"], me["timezone"]) == ("dark", "Europe/London")

    cleared = patch_me(client, account, {"bio": None, "avatar_url": None}).json()
    assert cleared["bio"] is None and cleared["avatar_url"] is None
    assert cleared["display_name"] == "Ada Lovelace"  # untouched

    with db.read() as uow:
        events = uow.session.scalars(
            select(AuditLog)
            .where(AuditLog.action == "user.updated")
            .order_by(AuditLog.created_at, AuditLog.id)
        ).all()
        assert events[0].new_values is not None
        assert events[0].new_values["preferences"] == "(changed)"  # not the content
        assert events[1].old_values == {
            "bio": "Analyst",
            "avatar_url": "https://img.example.test/ada.png",
        }


@pytest.mark.parametrize(
    "body",
    [
        {"timezone": "Mars/Olympus_Mons"},
        {"timezone": "utc+2"},
        {"username": "no spaces"},
        {"username": "x"},
        {"username": "admin"},
        {"theme": "neon"},
        {"avatar_url": "ftp://example.test/a.png"},
        {"avatar_url": "https://example.test/" + "a" * 2100},
        {"preferences": {"big": "x" * 9000}},
        {"preferences": [1, 2, 3]},
        {"bio": "b" * 1001},
        {"display_name": ""},
        {"email": "new@example.test"},
        {"role": "admin"},
    ],
)
def test_profile_update_is_validated(client: TestClient, body: dict[str, Any]) -> None:
    account = register(client)
    response = patch_me(client, account, body)
    assert response.status_code == 422, body
    assert response.json()["error"]["code"] == "validation_error"


def test_username_must_be_free(client: TestClient) -> None:
    register(client, username="first_come")
    late = register(client)
    response = patch_me(client, late, {"username": "FIRST_COME"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "username_taken"
    assert patch_me(client, late, {"username": "second_come"}).status_code == 200


# -- password change --------------------------------------------------------------------------


def test_password_change_revokes_other_sessions(client: TestClient) -> None:
    account = register(client)
    elsewhere = login(client, account.email)
    response = client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )
    assert response.status_code == 200 and response.json() == {"revoked": 1}
    assert client.get("/api/me", headers=account.headers).status_code == 200  # this one stays
    assert client.get("/api/me", headers=elsewhere.headers).status_code == 401
    assert login_response(client, account.email, PASSWORD).status_code == 401
    login(client, account.email, NEW_PASSWORD)
    assert "user.password_changed" in audit_actions(client, account)


def test_password_change_needs_the_current_password(client: TestClient) -> None:
    account = register(client)
    for body in (
        {"current_password": "not my password", "new_password": NEW_PASSWORD},
        {"new_password": NEW_PASSWORD},
    ):
        response = client.post("/api/me/password", json=body, headers=account.headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "wrong_password"
    short = client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=account.headers,
    )
    assert short.status_code == 422
    login(client, account.email)  # unchanged


# -- deletion ----------------------------------------------------------------------------------


def owned_rows(db: Database, account: Account) -> None:
    with db.write() as uow:
        app = App(title="mine", user_id=account.user_id)
        uow.session.add(app)
        uow.session.flush()
        uow.session.add(Star(user_id=account.user_id, app_id=app.id))
        uow.session.add(
            UserSecret(
                user_id=account.user_id,
                provider="openai",
                display_name="OpenAI",
                ciphertext=CIPHERTEXT,
                key_id="k1",
                preview="sk-…9",
            )
        )


def test_delete_account_soft_deletes_and_frees_the_email(client: TestClient, db: Database) -> None:
    account = register(client, username="gone_soon")
    owned_rows(db, account)
    key = client.post("/api/keys", json={"name": "k"}, headers=account.headers).json()["key"]

    wrong = client.request("DELETE", "/api/me", json={"password": "nope"}, headers=account.headers)
    assert wrong.status_code == 403
    missing = client.request("DELETE", "/api/me", headers=account.headers)
    assert missing.status_code == 403
    assert (
        client.request(
            "DELETE", "/api/me", json={"password": PASSWORD}, headers=account.headers
        ).status_code
        == 204
    )

    with db.read() as uow:
        user = uow.session.get(User, account.user_id)
        assert user is not None and user.deleted_at is not None and not user.is_active
        assert user.email == tombstone_email(account.user_id)
        assert (user.username, user.password_hash, user.bio) == (None, None, None)
        assert all(
            s.revoked_at is not None
            for s in uow.session.scalars(
                select(UserSession).where(UserSession.user_id == account.user_id)
            )
        )
        assert uow.session.scalars(select(ApiKey.revoked_at)).one() is not None
        app = uow.session.scalars(select(App)).one()
        assert app.deleted_at is not None
        secret = uow.session.scalars(select(UserSecret)).one()
        assert secret.deleted_at is not None and secret.ciphertext is None
        # The trail stays, with the deletion last.
        actions = uow.session.scalars(
            select(AuditLog.action)
            .where(AuditLog.subject_user_id == account.user_id)
            .order_by(AuditLog.created_at, AuditLog.id)
        ).all()
        assert actions[0] == "user.registered" and actions[-1] == "user.deleted"
    assert client.get("/api/me", headers=bearer(key)).status_code == 401

    reborn = register(client, email=account.email, username="gone_soon")
    assert reborn.user_id != account.user_id


def test_deleting_an_account_keeps_fork_counts_right(client: TestClient, db: Database) -> None:
    author = register(client)
    forker = register(client)
    with db.write() as uow:
        original = App(title="original", user_id=author.user_id, fork_count=2)
        uow.session.add(original)
        uow.session.flush()
        uow.session.add_all(
            [
                App(title="fork 1", user_id=forker.user_id, parent_app_id=original.id),
                App(title="fork 2", user_id=forker.user_id, parent_app_id=original.id),
            ]
        )
        original_id = original.id
    deleted = client.request(
        "DELETE", "/api/me", json={"password": PASSWORD}, headers=forker.headers
    )
    assert deleted.status_code == 204
    with db.read() as uow:
        original_row = uow.session.get(App, original_id)
        assert original_row is not None and original_row.fork_count == 0


def test_oauth_only_account_deletes_without_a_password(client: TestClient, db: Database) -> None:
    account = register(client)
    with db.write() as uow:
        user = uow.session.get(User, account.user_id)
        assert user is not None
        user.password_hash = None
    assert client.request("DELETE", "/api/me", headers=account.headers).status_code == 204


# -- export ------------------------------------------------------------------------------------


def test_export_has_everything_owned_and_no_credential(client: TestClient, db: Database) -> None:
    account = register(client)
    owned_rows(db, account)
    key = client.post("/api/keys", json={"name": "k"}, headers=account.headers).json()["key"]
    other = register(client)
    owned_rows(db, other)

    response = client.get("/api/me/export", headers=account.headers)
    assert response.status_code == 200
    export = response.json()
    assert export["format"] == "stich-account-export/1"
    assert export["user"]["id"] == account.user_id and export["user"]["email"] == account.email
    assert len(export["apps"]) == 1 and export["apps"][0]["title"] == "mine"
    assert len(export["stars"]) == 1 and export["favorites"] == []
    assert len(export["api_keys"]) == 1 and export["api_keys"][0]["preview"]
    assert len(export["sessions"]) == 1
    assert export["secrets"][0]["display_name"] == "OpenAI"
    assert "user.registered" in [event["action"] for event in export["audit"]]
    assert {app["user_id"] for app in export["apps"]} == {account.user_id}

    raw = json.dumps(export)
    for forbidden in (
        "password_hash",
        "key_hash",
        "access_token_hash",
        "refresh_token_hash",
        "ciphertext",
        "ip_hash",
        "$argon2id$",
        key,
        account.access_token,
        account.refresh_token,
        CIPHERTEXT.decode(errors="ignore")[4:],
    ):
        assert forbidden not in raw, forbidden


def test_export_runs_a_bounded_number_of_queries(client: TestClient, db: Database) -> None:
    account = register(client)
    for _ in range(5):
        owned_rows(db, account)
    with track_queries() as few, db.read() as uow:
        UserService(uow.session).export(Principal.user(account.user_id), now=utcnow())
    for _ in range(20):
        owned_rows(db, account)
    with track_queries() as many, db.read() as uow:
        UserService(uow.session).export(Principal.user(account.user_id), now=utcnow())
    assert few.statements > 0 and many.statements == few.statements


# -- the audit trail ---------------------------------------------------------------------------


def test_audit_pages_walk_every_event_once_newest_first(client: TestClient) -> None:
    account = register(client)
    for i in range(7):
        patch_me(client, account, {"bio": f"bio {i}"})
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/me/audit", params=params, headers=account.headers).json()
        assert len(page["items"]) <= 3
        seen.extend(page["items"])
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
        if not cursor:
            break
    assert len(seen) == 8 and len({e["id"] for e in seen}) == 8
    stamps = [(e["created_at"], e["id"]) for e in seen]
    assert stamps == sorted(stamps, reverse=True)
    assert seen[-1]["action"] == "user.registered"
    assert "ip_hash" not in seen[0]


def test_audit_shows_only_ones_own_events_and_validates_the_cursor(client: TestClient) -> None:
    alice = register(client)
    bob = register(client)
    patch_me(client, bob, {"bio": "bob's"})
    alice_events = client.get("/api/me/audit", headers=alice.headers).json()["items"]
    assert [e["action"] for e in alice_events] == ["user.registered"]
    bad = client.get("/api/me/audit", params={"cursor": "garbage"}, headers=alice.headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_cursor"
    assert (
        client.get("/api/me/audit", params={"limit": 0}, headers=alice.headers).status_code == 422
    )


def test_guessing_the_current_password_counts_towards_lockout(client: TestClient) -> None:
    """A stolen session must not become a way to guess the password without limit."""
    account = register(client)
    guess = {"current_password": "guess", "new_password": NEW_PASSWORD}
    for _ in range(4):
        response = client.post("/api/me/password", json=guess, headers=account.headers)
        assert response.status_code == 403
    locked = client.request(
        "DELETE", "/api/me", json={"password": "guess"}, headers=account.headers
    )
    assert locked.status_code == 423 and locked.headers["Retry-After"] == "60"
    # The lock guards the password, even the right one; the session itself still works.
    right = {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    assert client.post("/api/me/password", json=right, headers=account.headers).status_code == 423
    assert client.get("/api/me", headers=account.headers).status_code == 200
    assert login_response(client, account.email, PASSWORD).status_code == 423
