"""Local keys live where the database is, not where the command runs: a server started from
any directory against the same database finds the same server key and vault key ring."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from stich.api.app import create_app
from stich.bench.http import _wait_ready
from stich.cli.errors import CliFailure
from stich.cli.startup import check_startup
from stich.config import Settings, load_settings, local_keys_dir
from stich.db import Database
from stich.db.local_cluster import free_ports
from tests.auth_support import FAST_ARGON2, register
from tests.conftest import TEST_SERVER_KEY
from tests.factories import make_user

VALUE = "sk-test-" + "v" * 30


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two working directories, and a per-test user data directory for PostgreSQL keys."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    for name in list(os.environ):
        if name.startswith("STICH_"):
            monkeypatch.delenv(name)
    first, second = tmp_path / "here", tmp_path / "elsewhere"
    first.mkdir()
    second.mkdir()
    return first, second


def keyless_settings(database_url: str, **overrides: object) -> Settings:
    """No STICH_SERVER_KEY, no STICH_SECRETS_KEYS, no key files: local keys are generated."""
    values = {"database_url": database_url, "env": "test", "embedded_worker": "off"}
    return load_settings(**{**values, **FAST_ARGON2, **overrides})


def test_sqlite_keys_sit_beside_the_database_whatever_the_cwd(
    places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    here, elsewhere = places
    absolute = f"sqlite:///{tmp_path / 'data' / 'stich.db'}"
    for cwd in (here, elsewhere):
        monkeypatch.chdir(cwd)
        settings = load_settings(database_url=absolute)
        assert settings.server_key_path() == tmp_path / "data" / ".stich" / "server.key"
        assert settings.secrets_keys_path() == tmp_path / "data" / ".stich" / "secrets.keys"
    # A relative URL names a file under the cwd, and its keys are beside that file.
    monkeypatch.chdir(here)
    assert load_settings().server_key_path() == here.resolve() / ".stich" / "server.key"


def test_postgres_keys_live_per_server_and_database_in_the_user_data_dir(
    places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = make_url("postgresql+psycopg://app@db.example:6543/stich")
    assert local_keys_dir(url) == tmp_path / "xdg" / "stich" / "db.example-6543-stich"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "stich" / "db.example-6543-stich"
    assert local_keys_dir(url) == expected


def test_key_files_that_are_set_are_used_as_given(tmp_path: Path) -> None:
    settings = load_settings(
        server_key_file=tmp_path / "a.key", secrets_keys_file=tmp_path / "b.keys"
    )
    assert settings.server_key_path() == tmp_path / "a.key"
    assert settings.secrets_keys_path() == tmp_path / "b.keys"


def test_tokens_and_secrets_survive_a_change_of_directory(
    db: Database, database_url: str, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = places
    monkeypatch.chdir(here)
    with TestClient(create_app(keyless_settings(database_url), db)) as client:
        account = register(client)
        created = client.post(
            "/api/secrets",
            json={"provider": "openai", "display_name": "key", "value": VALUE},
            headers=account.headers,
        )
        assert created.status_code == 201, created.text
    monkeypatch.chdir(elsewhere)
    with TestClient(create_app(keyless_settings(database_url), db)) as client:
        assert client.get("/api/me", headers=account.headers).status_code == 200
        revealed = client.post(
            f"/api/secrets/{created.json()['id']}/reveal", headers=account.headers
        )
        assert revealed.status_code == 200, revealed.text
        assert revealed.json()["value"] == VALUE
    assert not (here / ".stich").exists()
    assert not (elsewhere / ".stich").exists()


def test_a_server_started_elsewhere_accepts_tokens_issued_before(
    db: Database, database_url: str, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = places
    monkeypatch.chdir(here)
    with TestClient(create_app(keyless_settings(database_url), db)) as client:
        account = register(client)
    port = free_ports(1)[0]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    environment.update(STICH_DATABASE_URL=database_url, STICH_EMBEDDED_WORKER="off")
    log = elsewhere / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "stich.cli", "serve", "--port", str(port)],
            cwd=elsewhere,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}", process, log)
        me = httpx.get(f"http://127.0.0.1:{port}/api/me", headers=account.headers)
        assert me.status_code == 200, me.text
        assert me.json()["id"] == account.user_id
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert not (elsewhere / ".stich").exists()


# --- a key file that is missing while the database holds what it made ---------------------


def test_start_up_refuses_to_generate_a_server_key_over_live_sessions(
    db: Database, database_url: str, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, _ = places
    monkeypatch.chdir(here)
    make_user(db)  # a live session, issued under some key
    settings = keyless_settings(database_url)
    with pytest.raises(CliFailure) as refused:
        check_startup(settings, migrate_first=False)
    assert refused.value.exit_code == 2
    line = str(refused.value)
    assert f"no server key at {settings.server_key_path()}" in line
    assert "holds 1 sessions and API keys" in line
    assert "earlier versions" not in line
    assert not settings.server_key_path().exists()


def test_the_refusal_points_at_keys_left_in_the_cwd_by_earlier_versions(
    db: Database, database_url: str, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    here, _ = places
    monkeypatch.chdir(here)
    (here / ".stich").mkdir()
    (here / ".stich" / "server.key").write_text("k" * 64)
    make_user(db)
    settings = keyless_settings(database_url)
    with pytest.raises(CliFailure) as refused:
        check_startup(settings, migrate_first=False)
    expected = f"earlier versions kept keys in {here / '.stich'}: move its key files to "
    assert expected + str(settings.local_keys_dir()) in str(refused.value)


def test_start_up_refuses_to_generate_a_key_ring_over_stored_secrets(
    client: TestClient,
    db: Database,
    database_url: str,
    places: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(places[0])
    user = make_user(db)
    body = {"provider": "openai", "display_name": "key", "value": VALUE}
    assert client.post("/api/secrets", json=body, headers=user.headers).status_code == 201
    settings = keyless_settings(database_url, server_key=TEST_SERVER_KEY)
    with pytest.raises(CliFailure) as refused:
        check_startup(settings, migrate_first=False)
    assert f"no key ring at {settings.secrets_keys_path()}" in str(refused.value)
    assert "holds 1 secrets" in str(refused.value)
    assert not settings.secrets_keys_path().exists()


def test_start_up_on_a_fresh_database_generates_both_keys_in_place(
    db: Database, database_url: str, places: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(places[1])
    settings = keyless_settings(database_url)
    check_startup(settings, migrate_first=False)
    assert settings.server_key_path().exists()
    assert settings.secrets_keys_path().exists()
    assert settings.server_key_path().parent == settings.local_keys_dir()
