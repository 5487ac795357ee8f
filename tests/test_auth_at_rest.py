"""A stolen database holds no usable credential: no password, token, key or email link in
any column, nor anywhere in the SQLite file's bytes."""

from __future__ import annotations

import email
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from stich.config import Settings
from stich.db import Database
from tests.auth_support import (
    auth_settings,
    credentials_found,
    credentials_in_sqlite_files,
    login,
    register,
)
from tests.email_support import delivered, token_in

PASSWORD = "Unmistakable-Passphrase-4711"
NEW_PASSWORD = "Another-Unmistakable-Passphrase-0815"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return auth_settings(database_url, tmp_path)


def test_database_holds_no_usable_credential(
    client: TestClient, db: Database, backend: str
) -> None:
    anonymous = client.post("/api/auth/anonymous").json()["anonymous_token"]
    account = register(client, password=PASSWORD, anonymous_token=anonymous)
    signed_in = login(client, account.email, PASSWORD)
    rotated = client.post(
        "/api/auth/refresh", json={"refresh_token": signed_in.refresh_token}
    ).json()
    key = client.post(
        "/api/keys", json={"name": "deploy", "scopes": ["account:read"]}, headers=account.headers
    ).json()["key"]
    assert client.get("/api/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    changed = client.post(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=account.headers,
    )
    assert changed.status_code == 200
    failed = client.post("/api/auth/login", json={"email": account.email, "password": PASSWORD})
    assert failed.status_code == 401  # the old password is gone, and the attempt audited

    needles = {
        "password": PASSWORD,
        "new password": NEW_PASSWORD,
        "register access token": account.access_token,
        "register refresh token": account.refresh_token,
        "login access token": signed_in.access_token,
        "login refresh token": signed_in.refresh_token,
        "rotated access token": rotated["access_token"],
        "rotated refresh token": rotated["refresh_token"],
        "api key": key,
        "anonymous token": anonymous,
    }
    assert credentials_found(db, needles) == []
    if backend == "sqlite":
        with db.write() as uow:  # fold the WAL in too, then look at both files
            uow.session.execute(text("SELECT 1"))
        assert credentials_in_sqlite_files(db, needles) == []
        with db.primary.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert credentials_in_sqlite_files(db, needles) == []


def test_the_scan_would_notice_a_credential(client: TestClient, db: Database) -> None:
    """The scanner itself is not blind: a value written in plain text is reported."""
    account = register(client)
    client.patch(
        "/api/me", json={"bio": f"my token is {account.access_token}"}, headers=account.headers
    )
    found = credentials_found(db, {"access token": account.access_token})
    assert "users.bio: access token" in found
    if db.backend == "sqlite":
        assert credentials_in_sqlite_files(db, {"access token": account.access_token})


def test_email_links_are_stored_only_as_keyed_hashes_and_never_logged(
    client: TestClient,
    db: Database,
    settings: Settings,
    backend: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    account = register(client, password=PASSWORD)
    client.post("/api/auth/password/forgot", json={"email": account.email})
    client.post(
        "/api/me/email",
        json={"new_email": "moved-at-rest@example.test", "password": PASSWORD},
        headers=account.headers,
    )
    delivered(settings)
    tokens: dict[str, str] = {}
    for path in sorted(settings.outbox_dir().glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        assert isinstance(message, EmailMessage)
        if message["X-Stich-Template"] in ("verify_email", "reset_password", "change_email"):
            tokens[str(message["X-Stich-Template"])] = token_in(message)
    assert sorted(tokens) == ["change_email", "reset_password", "verify_email"]
    verified = client.post("/api/auth/email/verify/confirm", json={"token": tokens["verify_email"]})
    assert verified.status_code == 200

    # Each token whole and its random part alone (the prefix is the same for everyone).
    needles = {f"{name} link": token for name, token in tokens.items()}
    needles |= {f"{name} random part": token[10:] for name, token in tokens.items()}
    assert credentials_found(db, needles) == []
    if backend == "sqlite":
        with db.primary.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        assert credentials_in_sqlite_files(db, needles) == []
    logged = capfd.readouterr()
    for name, token in needles.items():
        assert token not in logged.out + logged.err, name
