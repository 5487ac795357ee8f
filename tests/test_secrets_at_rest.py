"""What a stolen database holds, and what a tampered one serves (both backends)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select, text, update

from stich.api.app import create_app
from stich.audit.models import AuditLog
from stich.config import Settings
from stich.crypto.vault import Vault
from stich.db import Database
from stich.secrets.models import UserSecret
from stich.secrets.service import verify_secrets
from tests.conftest import make_settings
from tests.factories import SignedIn, make_user

WINDOW = 8  # no run of this many characters of a value may appear anywhere


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def ring_settings(database_url: str, tmp_path: Path, key: bytes) -> Settings:
    """Settings with a fresh random ring, so its bytes are findable in a dump."""
    ring = "live:" + base64.b64encode(key).decode()
    return make_settings(database_url, tmp_path, secrets_keys=ring)


@pytest.fixture
def vault_client(db: Database, ring_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(ring_settings, db), raise_server_exceptions=False) as client:
        yield client


def new_value() -> str:
    return "sk-live-" + secrets.token_urlsafe(36)


def create(client: TestClient, user: SignedIn, value: str, provider: str = "openai") -> str:
    body = {"provider": provider, "display_name": "key", "value": value}
    response = client.post("/api/secrets", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    secret_id: str = response.json()["id"]
    return secret_id


def dump_tables(db: Database) -> bytes:
    """Every text, binary and JSON value of every table, found by reflection."""
    reflected = MetaData()
    reflected.reflect(bind=db.primary)
    chunks: list[bytes] = []
    with db.primary.connect() as conn:
        for table in reflected.sorted_tables:
            for row in conn.execute(select(table)):
                chunks.extend(_as_bytes(value) for value in row)
    return b"\n".join(chunks)


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False).encode()
    return str(value).encode()


def sqlite_file_bytes(db: Database) -> bytes:
    with db.primary.connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    path = Path(db.settings.url.database or "")
    data = path.read_bytes()
    for suffix in ("-wal", "-journal"):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            data += extra.read_bytes()
    return data


def assert_no_plaintext(haystack: bytes, values: list[str], key: bytes) -> None:
    for value in values:
        raw = value.encode()
        for start in range(len(raw) - WINDOW + 1):
            assert raw[start : start + WINDOW] not in haystack, "a piece of a value is stored"
        assert base64.b64encode(raw) not in haystack
        assert raw.hex().encode() not in haystack
    for form in (key, base64.b64encode(key), key.hex().encode()):
        assert form not in haystack, "key material is stored"


def test_a_database_dump_holds_no_value_and_no_key(
    vault_client: TestClient, db: Database, key: bytes
) -> None:
    client = vault_client
    alice, bob = make_user(db), make_user(db)
    values = [new_value() for _ in range(5)]
    kept = create(client, alice, values[0])
    revealed = create(client, alice, values[1], provider="anthropic")
    replaced = create(client, bob, values[2])
    deleted = create(client, bob, values[3])
    assert client.post(f"/api/secrets/{revealed}/reveal", headers=alice.headers).status_code == 200
    patched = client.patch(
        f"/api/secrets/{replaced}", json={"value": values[4]}, headers=bob.headers
    )
    assert patched.status_code == 200
    assert client.delete(f"/api/secrets/{deleted}", headers=bob.headers).status_code == 204
    assert kept

    dump = dump_tables(db)
    assert b"secret.reveal" in dump and b"secret.replace" in dump  # the dump is real
    assert_no_plaintext(dump, values, key)
    if db.backend == "sqlite":
        assert_no_plaintext(sqlite_file_bytes(db), values, key)


def swap_ciphertexts(db: Database, first: str, second: str) -> None:
    with db.write() as uow:
        rows = uow.session.execute(
            select(UserSecret.id, UserSecret.ciphertext).where(UserSecret.id.in_([first, second]))
        ).all()
        blobs = {row.id: row.ciphertext for row in rows}
        for target, source in ((first, second), (second, first)):
            uow.session.execute(
                update(UserSecret).where(UserSecret.id == target).values(ciphertext=blobs[source])
            )


def decrypt_failures(db: Database) -> list[tuple[str | None, dict[str, Any] | None]]:
    with db.read() as uow:
        rows = uow.session.execute(
            select(AuditLog.resource_id, AuditLog.new_values)
            .where(AuditLog.action == "secret.decrypt_failed")
            .order_by(AuditLog.created_at, AuditLog.id)
        ).all()
    return [(row.resource_id, row.new_values) for row in rows]


def usage(db: Database, secret_id: str) -> int:
    with db.read() as uow:
        count = uow.session.scalar(select(UserSecret.usage_count).where(UserSecret.id == secret_id))
    assert count is not None
    return count


def test_swapped_ciphertexts_are_reported_not_served(
    vault_client: TestClient, db: Database, ring_settings: Settings
) -> None:
    client = vault_client
    alice, bob = make_user(db), make_user(db)
    a_value, b_value, c_value = new_value(), new_value(), new_value()
    first = create(client, alice, a_value)
    second = create(client, alice, b_value)
    bobs = create(client, bob, c_value)

    # Between two rows of the same user.
    swap_ciphertexts(db, first, second)
    for secret_id in (first, second):
        response = client.post(f"/api/secrets/{secret_id}/reveal", headers=alice.headers)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "secret_unreadable"
        assert secret_id in error["message"]
        for value in (a_value, b_value, c_value):
            assert value not in response.text
        assert usage(db, secret_id) == 0

    # Between two users: Bob's ciphertext copied onto Alice's row, and the reverse.
    swap_ciphertexts(db, second, bobs)
    for user, secret_id in ((alice, second), (bob, bobs)):
        response = client.post(f"/api/secrets/{secret_id}/reveal", headers=user.headers)
        assert response.status_code == 409
        assert all(v not in response.text for v in (a_value, b_value, c_value))

    failures = decrypt_failures(db)
    assert [resource for resource, _ in failures] == [first, second, second, bobs]
    assert all(
        details == {"reason": "integrity", "error": "secret_unreadable"} for _, details in failures
    )

    report = verify_secrets(db, Vault.from_settings(ring_settings))
    assert report.checked == 3
    assert report.failures == {first: "integrity", second: "integrity", bobs: "integrity"}


def test_a_key_missing_from_the_ring_is_503_and_audited(
    vault_client: TestClient, db: Database, tmp_path: Path
) -> None:
    user = make_user(db)
    value = new_value()
    secret_id = create(vault_client, user, value)
    other_ring = "newer:" + base64.b64encode(os.urandom(32)).decode()
    settings = make_settings(db.settings.database_url, tmp_path, secrets_keys=other_ring)
    with TestClient(create_app(settings, db), raise_server_exceptions=False) as client:
        response = client.post(f"/api/secrets/{secret_id}/reveal", headers=user.headers)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "vault_key_missing"
        assert "'live'" in error["message"] and value not in response.text
        # Metadata does not need the key.
        assert client.get(f"/api/secrets/{secret_id}", headers=user.headers).status_code == 200
    assert decrypt_failures(db) == [
        (secret_id, {"reason": "unknown_key", "error": "vault_key_missing"})
    ]
    assert usage(db, secret_id) == 0
