"""Every database and file-system failure of a command is one line saying what to do, exit 1.

Run as a user would (a subprocess), against real servers and real directories.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from stich.db.local_cluster import free_ports
from tests.cli_support import run_stich
from tests.conftest import (
    POSTGRES_URL,
    TEST_KEY_RING,
    _libpq,
    create_pg_database,
    drop_pg_database,
)

STICH = (sys.executable, "-m", "stich.cli")


def one_line(result: subprocess.CompletedProcess[str], exit_code: int = 1) -> str:
    """The single stderr line of a failed command (no traceback)."""
    assert result.returncode == exit_code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("stich: ")
    return lines[0]


def pg_url(**parts: Any) -> str:
    return make_url(POSTGRES_URL).set(**parts).render_as_string(hide_password=False)


@pytest.fixture
def postgres(postgres_available: bool) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL is not available")


@pytest.fixture
def read_only_dir() -> Iterator[Path]:
    """A directory this user cannot write into (reachable by any user, unlike tmp_path)."""
    directory = Path(tempfile.mkdtemp(prefix="stich-ro-"))
    directory.chmod(0o755)
    (directory / "locked").mkdir(mode=0o555)
    yield directory / "locked"
    shutil.rmtree(directory)


def as_unprivileged(*args: str) -> list[str]:
    """Root ignores file modes: drop the capabilities that let it (keeping uid 0, so the
    interpreter under /root stays readable)."""
    if os.geteuid() != 0:
        return list(args)
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", *args]


def test_a_missing_postgres_database_says_create_it(postgres: None, tmp_path: Path) -> None:
    url = pg_url(database="nonexistent_db_xyz")
    line = one_line(run_stich("--database-url", url, "db", "current", cwd=tmp_path))
    assert "'nonexistent_db_xyz' does not exist" in line
    assert "createdb" in line
    assert "stich db upgrade" in line


def test_an_unreachable_server_says_check_host_and_port(tmp_path: Path) -> None:
    url = pg_url(host="127.0.0.1", port=free_ports(1)[0], database="stich")
    line = one_line(run_stich("--database-url", url, "db", "current", cwd=tmp_path))
    assert "cannot reach PostgreSQL at 127.0.0.1" in line
    assert "ECONNREFUSED" in line
    assert "host and port" in line


def test_a_wrong_role_says_check_user_and_password(postgres: None, tmp_path: Path) -> None:
    url = pg_url(username="no_such_role_xyz", password=None)
    line = one_line(run_stich("--database-url", url, "db", "current", cwd=tmp_path))
    assert "refused the role 'no_such_role_xyz'" in line
    assert "user and password" in line


@pytest.mark.parametrize(
    "command",
    [("auth", "cleanup"), ("apps", "purge"), ("db", "verify"), ("secrets", "verify")],
    ids=" ".join,
)
def test_a_database_not_migrated_says_run_db_upgrade(
    empty_database_url: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = {"STICH_SECRETS_KEYS": TEST_KEY_RING}  # no "generated a key ring" warning
    result = run_stich("--database-url", empty_database_url, *command, cwd=tmp_path, env=env)
    line = one_line(result)
    assert "empty (no migrations applied), not at head" in line
    assert "run `stich db upgrade`" in line


def test_a_database_behind_names_both_revisions(empty_database_url: str, tmp_path: Path) -> None:
    upgrade = run_stich("--database-url", empty_database_url, "db", "upgrade", "0001", cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    line = one_line(run_stich("--database-url", empty_database_url, "db", "verify", cwd=tmp_path))
    assert "at revision 0001, not at head 0" in line


def test_a_sqlite_directory_that_does_not_exist(tmp_path: Path) -> None:
    result = run_stich(
        "--database-url", "sqlite:////no/such/dir/x.db", "db", "current", cwd=tmp_path
    )
    line = one_line(result)
    assert "the directory /no/such/dir does not exist" in line
    assert "mkdir -p /no/such/dir" in line


def test_a_read_only_directory_says_make_it_writable(read_only_dir: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{read_only_dir / 'x.db'}"
    command = as_unprivileged(*STICH, "--database-url", url, "db", "upgrade")
    line = one_line(_run(command, tmp_path))
    assert f"the directory {read_only_dir} is not writable" in line
    assert not (read_only_dir / "x.db").exists()


def test_a_read_only_database_file_says_make_it_writable(
    read_only_dir: Path, tmp_path: Path
) -> None:
    database = read_only_dir / "x.db"
    read_only_dir.chmod(0o755)
    url = f"sqlite:///{database}"
    assert run_stich("--database-url", url, "db", "upgrade", cwd=tmp_path).returncode == 0
    for path in read_only_dir.iterdir():
        path.chmod(0o444)
    read_only_dir.chmod(0o555)
    line = one_line(_run(as_unprivileged(*STICH, "--database-url", url, "apps", "purge"), tmp_path))
    assert f"{database} is read-only for this user" in line


def test_a_key_file_that_cannot_be_written_is_one_line(read_only_dir: Path, tmp_path: Path) -> None:
    """An OSError (here generating the server key at start-up) is explained by its errno."""
    url = f"sqlite:///{tmp_path / 'stich.db'}"
    assert run_stich("--database-url", url, "db", "upgrade", cwd=tmp_path).returncode == 0
    key_file = read_only_dir / "keys" / "server.key"
    command = as_unprivileged(*STICH, "--database-url", url, "serve")
    result = _run(command, tmp_path, STICH_SERVER_KEY_FILE=str(key_file))
    line = one_line(result, exit_code=2)
    assert f"permission denied on {key_file.parent}" in line
    assert "writable" in line


@pytest.mark.parametrize(
    ("flag", "env"), [(("--debug",), {}), ((), {"STICH_DEBUG": "1"})], ids=["flag", "env"]
)
def test_debug_shows_the_traceback_then_the_line(
    tmp_path: Path, flag: tuple[str, ...], env: dict[str, str]
) -> None:
    url = "sqlite:////no/such/dir/x.db"
    result = run_stich(*flag, "--database-url", url, "db", "current", cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "sqlite3.OperationalError" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("stich: cannot open")


def _run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    return subprocess.run(
        command,
        cwd=cwd,
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def bare_role(postgres: None) -> Iterator[str]:
    """A role that may log in and nothing more (cluster-wide, so dropped after)."""
    name = f"stich_bare_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_libpq(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{name}" LOGIN')
    yield name
    with psycopg.connect(_libpq(POSTGRES_URL), autocommit=True) as conn:
        conn.execute(f'DROP OWNED BY "{name}"')
        conn.execute(f'DROP ROLE "{name}"')


def test_a_role_without_table_privileges_says_grant_them(
    postgres_database: str, bare_role: str, tmp_path: Path
) -> None:
    url = make_url(postgres_database).set(username=bare_role).render_as_string(False)
    line = one_line(run_stich("--database-url", url, "auth", "cleanup", cwd=tmp_path))
    assert "the database role lacks a privilege this needs" in line


def test_a_role_refused_connect_on_the_database_says_grant_connect(
    bare_role: str, tmp_path: Path
) -> None:
    url = create_pg_database("stich_noconnect")
    try:
        name = make_url(url).database
        with psycopg.connect(_libpq(url), autocommit=True) as conn:
            conn.execute(f'REVOKE CONNECT ON DATABASE "{name}" FROM PUBLIC')
        as_role = make_url(url).set(username=bare_role).render_as_string(False)
        line = one_line(run_stich("--database-url", as_role, "db", "current", cwd=tmp_path))
        assert f"the role '{bare_role}' may not connect to the database '{name}'" in line
        assert "GRANT CONNECT" in line
    finally:
        drop_pg_database(url)
