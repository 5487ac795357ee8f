"""Anonymous owners: tokens issued hashed, and their apps claimed by an account atomically."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from stich.apps.models import App
from stich.audit.models import AuditLog
from stich.auth.models import AnonymousOwner
from stich.config import Settings
from stich.db import Database
from tests.auth_support import (
    PASSWORD,
    audit_actions,
    auth_settings,
    bearer,
    login_response,
    register,
    unique_email,
)
from tests.factories import hasher


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def issue(client: TestClient) -> str:
    response = client.post("/api/auth/anonymous")
    assert response.status_code == 201
    token: str = response.json()["anonymous_token"]
    return token


def make_apps(db: Database, owner_hash: str, count: int) -> list[str]:
    with db.write() as uow:
        apps = [App(title=f"draft {i}", anonymous_owner_hash=owner_hash) for i in range(count)]
        uow.session.add_all(apps)
        uow.session.flush()
        return sorted(app.id for app in apps)


def owners(db: Database, app_ids: list[str]) -> set[tuple[str | None, str | None]]:
    with db.read() as uow:
        rows = uow.session.execute(
            select(App.user_id, App.anonymous_owner_hash).where(App.id.in_(app_ids))
        ).all()
        return {(row.user_id, row.anonymous_owner_hash) for row in rows}


def test_issued_token_is_stored_hashed_and_authenticates(client: TestClient, db: Database) -> None:
    token = issue(client)
    with db.read() as uow:
        [row] = uow.session.scalars(select(AnonymousOwner)).all()
        assert row.owner_hash == hasher.token_hash(token) and token not in row.owner_hash
        assert row.claimed_at is None
    # An anonymous principal is not an account: account endpoints say 401.
    assert client.get("/api/me", headers=bearer(token)).status_code == 401


def test_register_claims_the_anonymous_apps(client: TestClient, db: Database) -> None:
    token = issue(client)
    owner_hash = hasher.token_hash(token)
    app_ids = make_apps(db, owner_hash, 3)
    bystander = make_apps(db, hasher.token_hash(issue(client)), 1)

    account = register(client, anonymous_token=token)
    assert account.body["claimed_apps"] == 3
    assert owners(db, app_ids) == {(account.user_id, None)}
    assert owners(db, bystander) != {(account.user_id, None)}

    with db.read() as uow:
        event = uow.session.scalars(
            select(AuditLog).where(AuditLog.action == "auth.anonymous_claimed")
        ).one()
        assert event.subject_user_id == account.user_id
        assert event.new_values == {"apps": 3, "app_ids": app_ids}
    assert "auth.anonymous_claimed" in audit_actions(client, account)

    # The token is spent: it no longer acts, and cannot be claimed again.
    spent = client.get("/api/me", headers=bearer(token))
    assert spent.status_code == 401
    assert spent.json()["error"]["code"] == "anonymous_token_claimed"
    other = register(client, anonymous_token=token)
    assert other.body["claimed_apps"] == 0
    assert owners(db, app_ids) == {(account.user_id, None)}


def test_login_claims_and_a_failed_login_moves_nothing(client: TestClient, db: Database) -> None:
    account = register(client)
    token = issue(client)
    app_ids = make_apps(db, hasher.token_hash(token), 2)

    failed = login_response(client, account.email, "wrong password", anonymous_token=token)
    assert failed.status_code == 401
    assert owners(db, app_ids) == {(None, hasher.token_hash(token))}
    with db.read() as uow:  # still unclaimed
        assert uow.session.scalars(select(AnonymousOwner.claimed_at)).one() is None

    signed_in = login_response(client, account.email, PASSWORD, anonymous_token=token)
    assert signed_in.status_code == 200 and signed_in.json()["claimed_apps"] == 2
    assert owners(db, app_ids) == {(account.user_id, None)}


def test_concurrent_claims_give_every_app_to_exactly_one_account(
    client: TestClient, db: Database
) -> None:
    token = issue(client)
    app_ids = make_apps(db, hasher.token_hash(token), 5)
    barrier = threading.Barrier(4)
    responses: list[Response] = []

    def sign_up() -> None:
        body = {
            "email": unique_email("racer"),
            "password": PASSWORD,
            "display_name": "Racer",
            "anonymous_token": token,
        }
        barrier.wait()
        responses.append(client.post("/api/auth/register", json=body))

    threads = [threading.Thread(target=sign_up) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.status_code == 201 for r in responses)
    claims = sorted(r.json()["claimed_apps"] for r in responses)
    assert claims == [0, 0, 0, 5]
    winner = next(r.json()["user"]["id"] for r in responses if r.json()["claimed_apps"])
    assert owners(db, app_ids) == {(winner, None)}


def test_forged_anonymous_tokens_are_refused(client: TestClient) -> None:
    forged = "stich_san_" + "A" * 64
    response = client.post(
        "/api/auth/register",
        json={
            "email": unique_email(),
            "password": PASSWORD,
            "display_name": "X",
            "anonymous_token": forged,
        },
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_anonymous_token"
    assert client.get("/api/me", headers=bearer(forged)).status_code == 401
