"""STICH_REQUIRE_VERIFIED_EMAIL, the per-address cooldown and the operator commands."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from stich.api.app import create_app
from stich.cli.common import state
from stich.cli.main import app as cli
from stich.config import Settings
from stich.db import Database
from tests.auth_support import PASSWORD, auth_settings, login, login_response, register
from tests.conftest import TEST_SERVER_KEY
from tests.email_support import Inbox, delivered, token_in


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp: tuple[Inbox, int]) -> Settings:
    return auth_settings(
        database_url, tmp_path, smtp_url=f"smtp://127.0.0.1:{smtp[1]}", mail_retry_delay_seconds=0
    )


@contextmanager
def client_with(db: Database, settings: Settings, **overrides: object) -> Iterator[TestClient]:
    changed = type(settings).model_validate({**settings.model_dump(), **overrides})
    with TestClient(create_app(changed, db), raise_server_exceptions=False) as client:
        yield client


def verify(client: TestClient, settings: Settings, inbox: Inbox, email: str) -> None:
    client.post("/api/auth/email/verify/request", json={"email": email})
    delivered(settings)
    token = token_in(inbox.last_to(email, "verify_email"))
    assert client.post("/api/auth/email/verify/confirm", json={"token": token}).status_code == 200


def test_always_refuses_unverified_sign_in_with_a_way_out(
    db: Database, settings: Settings, inbox: Inbox
) -> None:
    with client_with(
        db, settings, require_verified_email="always", email_cooldown_seconds=0
    ) as client:
        account = register(client)
        # The session sign-up returned does not work either, until the address is confirmed.
        refused_session = client.get("/api/me", headers=account.headers)
        assert refused_session.status_code == 403
        refused = login_response(client, account.email, PASSWORD)
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["code"] == "email_not_verified"
        assert error["details"] == {"resend": "/api/auth/email/verify/request"}
        # A wrong password is still just a wrong password (it reveals nothing more).
        wrong = login_response(client, account.email, "not the password")
        assert wrong.json()["error"]["code"] == "invalid_credentials"

        verify(client, settings, inbox, account.email)
        signed_in = login(client, account.email)
        assert client.get("/api/me", headers=signed_in.headers).status_code == 200
        assert client.get("/api/me", headers=account.headers).status_code == 200


def test_publish_keeps_unverified_accounts_from_making_apps_public(
    db: Database, settings: Settings, inbox: Inbox
) -> None:
    with client_with(db, settings, require_verified_email="publish") as client:
        account = register(client)
        public = client.post(
            "/api/apps", json={"title": "Hello", "visibility": "public"}, headers=account.headers
        )
        assert public.status_code == 403
        assert public.json()["error"]["code"] == "email_not_verified"
        private = client.post("/api/apps", json={"title": "Hello"}, headers=account.headers)
        assert private.status_code == 201
        app_id = private.json()["id"]
        path = f"/api/apps/{app_id}/visibility"
        made_public = client.put(path, json={"visibility": "public"}, headers=account.headers)
        assert made_public.status_code == 403
        assert login_response(client, account.email, PASSWORD).status_code == 200  # may sign in

        delivered(settings)
        token = token_in(inbox.last_to(account.email, "verify_email"))
        client.post("/api/auth/email/verify/confirm", json={"token": token})
        made_public = client.put(path, json={"visibility": "public"}, headers=account.headers)
        assert made_public.status_code == 200, made_public.text


def test_never_is_the_default_and_lets_unverified_accounts_publish(client: TestClient) -> None:
    account = register(client)
    public = client.post(
        "/api/apps", json={"title": "Hello", "visibility": "public"}, headers=account.headers
    )
    assert public.status_code == 201


def test_one_mail_per_address_and_purpose_per_cooldown(
    client: TestClient, settings: Settings, inbox: Inbox
) -> None:
    assert settings.email_cooldown_seconds == 60  # the default
    account = register(client)
    for _ in range(3):
        answer = client.post("/api/auth/password/forgot", json={"email": account.email})
        assert answer.status_code == 202
    for _ in range(2):
        client.post("/api/auth/email/verify/request", json={"email": account.email})
    delivered(settings)
    templates = [m["X-Stich-Template"] for m in inbox.to(account.email)]
    # The sign-up link started the verification cooldown; one reset link got through.
    assert sorted(templates) == ["reset_password", "verify_email"]


def stich(database_url: str, smtp_port: int, *args: str) -> Result:
    state._settings = None  # each invocation reads its own environment, like a new process
    env = {
        "STICH_SERVER_KEY": TEST_SERVER_KEY,
        "STICH_ENV": "test",
        "STICH_DATABASE_URL": database_url,
        "STICH_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
    }
    return CliRunner().invoke(cli, list(args), env=env)


def test_operator_commands(
    client: TestClient, settings: Settings, smtp: tuple[Inbox, int], database_url: str
) -> None:
    inbox, port = smtp
    account = register(client)
    verified = stich(database_url, port, "users", "verify-email", account.email.upper())
    assert verified.exit_code == 0, verified.output
    assert client.get("/api/me", headers=account.headers).json()["email_verified"] is True

    for _ in range(2):  # operators are not held by the cooldown
        sent = stich(database_url, port, "users", "send-reset", account.email)
        assert sent.exit_code == 0, sent.output
    resets = [m for m in inbox.to(account.email) if m["X-Stich-Template"] == "reset_password"]
    assert len(resets) == 2
    token = token_in(resets[-1])
    done = client.post(
        "/api/auth/password/reset", json={"token": token, "new_password": "chosen by the owner"}
    )
    assert done.status_code == 200
    missing = stich(database_url, port, "users", "send-reset", "nobody@example.test")
    assert missing.exit_code != 0


def test_one_client_may_ask_for_so_many_mails_whatever_the_addresses(
    db: Database, settings: Settings
) -> None:
    with client_with(db, settings, email_client_max_requests=3) as client:
        account = register(client)
        answers = [
            client.post("/api/auth/password/forgot", json={"email": account.email}),
            client.post("/api/auth/password/forgot", json={"email": "nobody@example.test"}),
            client.post("/api/auth/email/verify/request", json={"email": "else@example.test"}),
        ]
        assert [a.status_code for a in answers] == [202, 202, 202]
        for email in (account.email, "nobody@example.test"):
            refused = client.post("/api/auth/password/forgot", json={"email": email})
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "too_many_mail_requests"
            assert int(refused.headers["Retry-After"]) > 0
