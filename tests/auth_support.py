"""Helpers for the identity tests: fast argon2 settings and sign-up/sign-in through the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from stich.config import Settings
from stich.db import Database
from stich.models import metadata
from tests.conftest import make_settings

# argon2id at its minimum cost: the tests exercise the flows, not the hash's strength.
FAST_ARGON2: dict[str, object] = {
    "argon2_time_cost": 1,
    "argon2_memory_cost": 8,
    "argon2_parallelism": 1,
}
PASSWORD = "correct horse battery staple"
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def auth_settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return make_settings(database_url, tmp_path, **{**FAST_ARGON2, **overrides})


@dataclass
class Account:
    user_id: str
    email: str
    password: str
    access_token: str
    refresh_token: str
    session_id: str
    body: dict[str, Any] = field(repr=False)

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.test"


def account_from(body: dict[str, Any], email: str, password: str) -> Account:
    tokens = body["tokens"]
    return Account(
        user_id=body["user"]["id"],
        email=email,
        password=password,
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        session_id=tokens["session_id"],
        body=body,
    )


def register(
    client: TestClient,
    email: str | None = None,
    password: str = PASSWORD,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Account:
    email = email or unique_email()
    payload = {"email": email, "password": password, "display_name": "Test User", **extra}
    response = client.post("/api/auth/register", json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return account_from(response.json(), email.strip().lower(), password)


def login_response(
    client: TestClient,
    email: str,
    password: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    return client.post(
        "/api/auth/login", json={"email": email, "password": password, **extra}, headers=headers
    )


def login(client: TestClient, email: str, password: str = PASSWORD, **extra: Any) -> Account:
    response = login_response(client, email, password, **extra)
    assert response.status_code == 200, response.text
    return account_from(response.json(), email, password)


def audit_actions(client: TestClient, account: Account) -> list[str]:
    """The account's own audit trail, oldest first, through GET /me/audit."""
    actions: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/me/audit", params=params, headers=account.headers).json()
        actions.extend(item["action"] for item in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return list(reversed(actions))


def credentials_found(db: Database, needles: dict[str, str]) -> list[str]:
    """Where any needle appears in any column of any row of any table ("table.column: name")."""
    found: list[str] = []
    with db.read() as uow:
        for table in metadata.sorted_tables:
            for row in uow.session.execute(select(table)).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    text = (
                        value.decode("latin-1")
                        if isinstance(value, bytes | bytearray | memoryview)
                        else str(value)
                    )
                    found.extend(
                        f"{table.name}.{column}: {name}"
                        for name, needle in needles.items()
                        if needle in text
                    )
    return found


def credentials_in_sqlite_files(db: Database, needles: dict[str, str]) -> list[str]:
    """Needles present in the SQLite database file, its WAL or its journal (raw bytes)."""
    path = Path(str(db.settings.url.database))
    found: list[str] = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
        if candidate.exists():
            raw = candidate.read_bytes()
            found.extend(
                f"{candidate.name}: {name}"
                for name, needle in needles.items()
                if needle.encode() in raw
            )
    return found
