"""`stich serve`, `worker` and `studio` refuse, in one line (exit 2), a database they cannot
use: unreachable, not at the migration head, or holding secrets the key ring cannot read."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from stich.bench.http import _wait_ready
from stich.cli.errors import CliFailure
from stich.cli.startup import check_startup
from stich.db import Database, migrate
from stich.db.engine import create_engine_for
from stich.db.local_cluster import free_ports
from tests.cli_support import run_stich
from tests.conftest import TEST_KEY_RING, TEST_SERVER_KEY, make_settings
from tests.factories import make_user
from tests.test_cli_errors import one_line

KEYS = {"STICH_SERVER_KEY": TEST_SERVER_KEY, "STICH_SECRETS_KEYS": TEST_KEY_RING}
OTHER_KEY = base64.b64encode(b"\x02" * 32).decode()


def start(database_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A start-up command that is expected to refuse (it would otherwise run until killed)."""
    return run_stich("--database-url", database_url, *args, cwd=cwd, env=KEYS)


def at_revision(database_url: str, revision: str) -> None:
    migrate.upgrade(database_url, revision)


@pytest.mark.parametrize("command", ["serve", "worker", "studio"])
def test_a_database_behind_head_is_refused_with_the_revisions(
    empty_database_url: str, tmp_path: Path, command: str
) -> None:
    at_revision(empty_database_url, "0001")
    line = one_line(start(empty_database_url, tmp_path, command), exit_code=2)
    heads = ", ".join(sorted(migrate.head_revisions()))
    assert f"the database is at revision 0001, not at head {heads}" in line
    assert "run `stich db upgrade` (or start with --migrate)" in line


def test_an_empty_database_is_refused(empty_database_url: str, tmp_path: Path) -> None:
    line = one_line(start(empty_database_url, tmp_path, "serve"), exit_code=2)
    assert "the database is empty (no migrations applied)" in line


def test_a_revision_this_code_does_not_know_is_refused_even_with_migrate(
    database_url: str, tmp_path: Path
) -> None:
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as conn:
            before = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            conn.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
        line = one_line(start(database_url, tmp_path, "serve", "--migrate"), exit_code=2)
        assert "at revision 9999_future, which this version of stich does not know" in line
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": before})
        engine.dispose()


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_an_unreachable_database_is_refused(tmp_path: Path, command: str) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_ports(1)[0]}/stich"
    line = one_line(start(url, tmp_path, command), exit_code=2)
    assert "cannot reach PostgreSQL" in line


def test_a_missing_sqlite_directory_is_refused(tmp_path: Path) -> None:
    line = one_line(start("sqlite:////no/such/dir/x.db", tmp_path, "serve"), exit_code=2)
    assert "the directory /no/such/dir does not exist" in line


def test_serve_with_migrate_upgrades_then_serves(empty_database_url: str, tmp_path: Path) -> None:
    at_revision(empty_database_url, "0001")
    port = free_ports(1)[0]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    environment.update(KEYS, STICH_EMBEDDED_WORKER="off", STICH_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "stich.cli", "--database-url", empty_database_url]
    command += ["serve", "--migrate", "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=environment, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process, log)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
    engine = create_engine_for(empty_database_url)
    try:
        assert migrate.is_at_head(engine)
    finally:
        engine.dispose()
    assert "stich: migrated the database to" in log.read_text()


# --- the key ring against what the database holds ------------------------------------


def store_a_secret(client: TestClient, db: Database) -> str:
    user = make_user(db)
    body = {"provider": "openai", "display_name": "key", "value": "sk-test-" + "x" * 30}
    response = client.post("/api/secrets", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    secret_id: str = response.json()["id"]
    return secret_id


def test_serve_refuses_a_ring_without_the_key_that_encrypted_the_secrets(
    client: TestClient, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_a_secret(client, db)
    env = {**KEYS, "STICH_SECRETS_KEYS": f"k2:{OTHER_KEY}"}
    result = run_stich("--database-url", database_url, "serve", cwd=tmp_path, env=env)
    line = one_line(result, exit_code=2)
    assert "the secrets key ring (STICH_SECRETS_KEYS) has no key 'k1'" in line
    assert "1 stored secrets" in line


def test_serve_refuses_a_ring_whose_key_of_that_id_is_another(
    client: TestClient, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_a_secret(client, db)
    env = {**KEYS, "STICH_SECRETS_KEYS": f"k1:{OTHER_KEY}"}
    result = run_stich("--database-url", database_url, "serve", cwd=tmp_path, env=env)
    line = one_line(result, exit_code=2)
    assert "cannot decrypt the 1 stored secrets under key 'k1'" in line


def test_a_ring_with_a_new_key_first_and_the_old_one_after_is_accepted(
    client: TestClient, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_a_secret(client, db)
    rotated = make_settings(database_url, tmp_path, secrets_keys=f"k2:{OTHER_KEY},{TEST_KEY_RING}")
    check_startup(rotated, migrate_first=False)  # no refusal


def test_one_damaged_secret_does_not_block_start_up(
    client: TestClient, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_a_secret(client, db)
    damaged = store_a_secret(client, db)
    with db.write() as uow:
        uow.session.execute(
            text("UPDATE user_secrets SET user_id = (SELECT min(id) FROM users) WHERE id = :id"),
            {"id": damaged},
        )
    settings = make_settings(database_url, tmp_path)
    check_startup(settings, migrate_first=False)  # `stich secrets verify` reports that row
    with pytest.raises(CliFailure) as refused:
        check_startup(
            make_settings(database_url, tmp_path, secrets_keys=f"k1:{OTHER_KEY}"),
            migrate_first=False,
        )
    assert refused.value.exit_code == 2


def test_production_without_a_ring_refuses_a_database_with_secrets(
    client: TestClient, db: Database, database_url: str, tmp_path: Path
) -> None:
    store_a_secret(client, db)
    production = make_settings(database_url, tmp_path, env="production", secrets_keys=None)
    with pytest.raises(CliFailure) as refused:
        check_startup(production, migrate_first=False)
    assert "holds 1 secrets but no key ring is configured" in str(refused.value)
