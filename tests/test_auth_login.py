"""Sign-up and sign-in: argon2id with rehash, enumeration resistance, lockout, and
accounts that may no longer sign in."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from stich.api.app import create_app
from stich.audit.models import AuditLog
from stich.auth.models import LoginThrottle
from stich.config import Settings
from stich.db import Database
from stich.db.base import utcnow
from stich.users.models import User
from stich.users.service import UserService
from tests.auth_support import (
    PASSWORD,
    auth_settings,
    login,
    login_response,
    register,
    unique_email,
)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def user_row(db: Database, email: str) -> User:
    with db.read() as uow:
        user = uow.session.scalars(select(User).where(User.email == email)).one()
        uow.session.expunge(user)
        return user


def expire_lock(db: Database, email: str) -> None:
    """Pretend the lock period has passed (no sleeping in tests)."""
    past = utcnow() - timedelta(seconds=1)
    with db.write() as uow:
        uow.session.execute(update(User).where(User.email == email).values(locked_until=past))
        uow.session.execute(update(LoginThrottle).values(locked_until=past))


def actions_about(db: Database, user_id: str | None) -> list[str]:
    with db.read() as uow:
        query = select(AuditLog.action).order_by(AuditLog.created_at, AuditLog.id)
        query = query.where(
            AuditLog.subject_user_id.is_(None)
            if user_id is None
            else AuditLog.subject_user_id == user_id
        )
        return list(uow.session.scalars(query))


# -- registration ---------------------------------------------------------------------


def test_register_signs_in_and_normalises_the_email(client: TestClient, db: Database) -> None:
    email = unique_email("Mixed.Case")
    account = register(client, email=f"  {email.upper()} ", username="Ada_99")
    me = client.get("/api/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json()["email"] == email.lower()
    assert me.json()["username"] == "ada_99"
    assert me.json()["has_password"] is True
    stored = user_row(db, email.lower())
    assert stored.password_hash is not None and stored.password_hash.startswith("$argon2id$")
    assert actions_about(db, account.user_id) == ["user.registered"]


def test_email_is_unique_case_insensitively(client: TestClient) -> None:
    email = unique_email()
    register(client, email=email)
    again = client.post(
        "/api/auth/register",
        json={"email": email.upper(), "password": PASSWORD, "display_name": "Twin"},
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "email_taken"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("password", "Sh0rt!x"),
        ("password", "Long!" * 52),
        ("email", "not-an-email"),
        ("username", "No Spaces"),
        ("username", "ab"),
        ("display_name", "   "),
    ],
)
def test_register_validates_its_input(client: TestClient, field: str, value: str) -> None:
    body = {"email": unique_email(), "password": PASSWORD, "display_name": "Valid", field: value}
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"
    if field == "password":
        assert value not in response.text  # a rejected password is never echoed


def test_username_taken(client: TestClient) -> None:
    register(client, username="taken_name")
    body = {
        "email": unique_email(),
        "password": PASSWORD,
        "display_name": "X",
        "username": "TAKEN_NAME",
    }
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"


# -- sign-in --------------------------------------------------------------------------


def test_login_succeeds_and_is_audited(client: TestClient, db: Database) -> None:
    account = register(client)
    signed_in = login(client, account.email.upper())
    assert client.get("/api/me", headers=signed_in.headers).status_code == 200
    assert signed_in.session_id != account.session_id
    assert actions_about(db, account.user_id) == ["user.registered", "auth.login"]


def test_unknown_email_and_wrong_password_look_the_same(
    client: TestClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = register(client)
    verified: list[str] = []
    original = PasswordHasher.verify

    def counting_verify(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        verified.append(str(hash))
        return original(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting_verify)
    wrong = login_response(client, account.email, "wrong password")
    unknown = login_response(client, unique_email("nobody"), "wrong password")
    malformed = login_response(client, "not even an email", "wrong password")
    assert wrong.status_code == unknown.status_code == malformed.status_code == 401
    assert wrong.json() == unknown.json() == malformed.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"
    assert set(wrong.headers) - {"x-request-id", "x-stich-bookmark", "content-length"} == set(
        unknown.headers
    ) - {"x-request-id", "x-stich-bookmark", "content-length"}
    # Each attempt spent one argon2 verification: the unknown ones against a dummy hash.
    assert len(verified) == 3
    # Both failures are audited; the unknown one under no account.
    assert actions_about(db, account.user_id)[-1] == "auth.login_failed"
    assert actions_about(db, None).count("auth.login_failed") == 2


def test_lockout_from_the_fifth_failure_doubling_and_reset(
    client: TestClient, db: Database
) -> None:
    account = register(client)
    for attempt in range(1, 5):
        response = login_response(client, account.email, f"wrong {attempt}")
        assert response.status_code == 401, attempt
    fifth = login_response(client, account.email, "wrong 5")
    assert fifth.status_code == 423
    assert fifth.headers["Retry-After"] == "60"
    assert fifth.json()["error"]["code"] == "too_many_attempts"
    assert fifth.json()["error"]["details"] == {"retry_after": 60}

    # Locked: even the right password is refused, with Retry-After.
    right = login_response(client, account.email, PASSWORD)
    assert right.status_code == 423
    assert 0 < int(right.headers["Retry-After"]) <= 60
    assert user_row(db, account.email).failed_login_attempts == 5

    # After the lock, one more failure locks for twice as long.
    expire_lock(db, account.email)
    sixth = login_response(client, account.email, "wrong 6")
    assert sixth.status_code == 423 and sixth.headers["Retry-After"] == "120"

    # Success after the lock resets everything.
    expire_lock(db, account.email)
    login(client, account.email)
    row = user_row(db, account.email)
    assert row.failed_login_attempts == 0 and row.locked_until is None
    assert login_response(client, account.email, "wrong again").status_code == 401

    trail = actions_about(db, account.user_id)
    assert trail.count("auth.login_failed") == 7
    assert trail.count("auth.locked") == 2
    assert trail.count("auth.login_blocked") == 1
    assert trail[-2:] == ["auth.login", "auth.login_failed"]


def test_lock_period_is_capped(client: TestClient, db: Database, tmp_path: Path) -> None:
    account = register(client)
    for _ in range(5):
        login_response(client, account.email, "wrong")
    retry_after = []
    for _ in range(5):
        expire_lock(db, account.email)
        retry_after.append(login_response(client, account.email, "wrong").headers["Retry-After"])
    # base 60s doubling: 120, 240, 480, 960, 1920 — all within the default cap of an hour.
    assert retry_after == ["120", "240", "480", "960", "1920"]
    expire_lock(db, account.email)
    assert login_response(client, account.email, "wrong").headers["Retry-After"] == "3600"


def test_unknown_emails_are_throttled_exactly_like_accounts(
    client: TestClient, db: Database
) -> None:
    account = register(client)
    stranger = unique_email("stranger")

    def answers(email: str) -> list[tuple[int, dict[str, object]]]:
        return [
            (r.status_code, r.json())
            for r in (login_response(client, email, f"guess {i}") for i in range(5))
        ]

    assert answers(account.email) == answers(stranger)
    for email in (account.email, stranger):
        blocked = login_response(client, email, PASSWORD)
        assert blocked.status_code == 423 and "Retry-After" in blocked.headers
        assert blocked.json()["error"]["code"] == "too_many_attempts"
    with db.read() as uow:
        throttle = uow.session.scalars(select(LoginThrottle)).one()
        assert throttle.failed_attempts == 5
        assert stranger not in throttle.email_hash  # keyed hash, not the address


def test_rehash_on_login_when_parameters_change(
    client: TestClient, db: Database, settings: Settings
) -> None:
    account = register(client)
    old_hash = user_row(db, account.email).password_hash
    assert old_hash is not None and "$m=8,t=1,p=1$" in old_hash

    stronger = settings.model_copy(update={"argon2_time_cost": 2, "argon2_memory_cost": 16})
    with TestClient(create_app(stronger, db), raise_server_exceptions=False) as upgraded:
        login(upgraded, account.email)
        new_hash = user_row(db, account.email).password_hash
        assert new_hash is not None and "$m=16,t=2,p=1$" in new_hash
        login(upgraded, account.email)  # the new hash verifies
        assert user_row(db, account.email).password_hash == new_hash  # and is kept
    login(client, account.email)  # older parameters still verify the newer hash


# -- accounts that can no longer sign in -------------------------------------------------


def test_suspended_user_is_rejected_on_the_next_request(client: TestClient, db: Database) -> None:
    account = register(client)
    key = client.post("/api/keys", json={"name": "bot"}, headers=account.headers).json()["key"]
    key_headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/keys", headers=account.headers).status_code == 200

    with db.write() as uow:
        UserService(uow.session).set_suspended(account.email, True, actor=None)

    for headers in (account.headers, key_headers):
        response = client.get("/api/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "account_unavailable"
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 401
    signed_in = login_response(client, account.email, PASSWORD)
    assert signed_in.status_code == 403
    assert signed_in.json()["error"]["code"] == "account_suspended"

    with db.write() as uow:
        UserService(uow.session).set_suspended(account.email, False, actor=None)
    assert client.get("/api/me", headers=account.headers).status_code == 200
    # The refused refresh did not consume the token.
    assert (
        client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token}).status_code
        == 200
    )


def test_deleted_user_is_rejected_and_can_sign_up_again(client: TestClient, db: Database) -> None:
    account = register(client, username="leaving_soon")
    key = client.post("/api/keys", json={"name": "bot"}, headers=account.headers).json()["key"]
    other_session = login(client, account.email)

    deleted = client.request(
        "DELETE", "/api/me", json={"password": PASSWORD}, headers=account.headers
    )
    assert deleted.status_code == 204

    for token in (account.access_token, other_session.access_token, key):
        response = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token[:10]
    refreshed = client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token})
    assert refreshed.status_code == 401
    failed = login_response(client, account.email, PASSWORD)
    assert failed.status_code == 401
    assert failed.json()["error"]["code"] == "invalid_credentials"

    again = register(client, email=account.email, username="leaving_soon")
    assert again.user_id != account.user_id


def test_nul_and_control_characters_are_refused_not_500(client: TestClient) -> None:
    """PostgreSQL text refuses NUL: such input must be a 4xx before it reaches SQL."""
    account = register(client)
    signed_up = client.post(
        "/api/auth/register",
        json={"email": "nul\x00@example.test", "password": PASSWORD, "display_name": "N"},
    )
    assert signed_up.status_code == 422
    # Refused for its shape (the input contract: one line, no control characters), the
    # same for every account, so it says nothing about which emails exist.
    signed_in = login_response(client, "nul\x00@example.test", PASSWORD)
    assert signed_in.status_code == 422
    assert signed_in.json()["error"]["code"] == "validation_error"
    for body in (
        {"bio": "a\x00b"},
        {"preferences": {"k": "a\x00b"}},
        {"preferences": {"a\x00": 1}},
        {"display_name": "bell\x07"},
    ):
        response = client.patch("/api/me", json=body, headers=account.headers)
        assert response.status_code == 422, body
    assert (
        client.patch(
            "/api/me", json={"bio": "line one\nline two\ttab"}, headers=account.headers
        ).status_code
        == 200
    )
    named = client.post("/api/keys", json={"name": "k\x00"}, headers=account.headers)
    assert named.status_code == 422
    for path in ("/api/keys/a%00b", "/api/auth/sessions/a%00b", "/api/auth/identities/a%00b"):
        assert client.delete(path, headers=account.headers).status_code == 422, path
