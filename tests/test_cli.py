"""The command line, run as a user would: through the installed `stich` entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STICH = [sys.executable, "-m", "stich.cli"]


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("STICH_")}
    full_env.update(env or {})
    return subprocess.run(
        [*STICH, *args],
        check=False,
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = _run("serve", cwd=tmp_path, env={"STICH_DATABASE_URL": "nonsense"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "STICH_DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr


def test_db_commands_on_the_default_sqlite_file(tmp_path: Path) -> None:
    assert _run("db", "current", cwd=tmp_path).stdout.strip() == "(empty database)"
    upgraded = _run("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "stich.db").exists()
    current = _run("db", "current", cwd=tmp_path)
    assert "(head)" in current.stdout
    check = _run("db", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "agree" in check.stdout
    history = _run("db", "history", cwd=tmp_path)
    assert "0001" in history.stdout
    down = _run("db", "downgrade", "base", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert _run("db", "current", cwd=tmp_path).stdout.strip() == "(empty database)"


def test_db_check_fails_on_an_unmigrated_database(tmp_path: Path) -> None:
    result = _run("db", "check", cwd=tmp_path)
    assert result.returncode != 0


@pytest.mark.usefixtures("postgres_available")
def test_database_url_option_reaches_postgres(tmp_path: Path, postgres_available: bool) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL is not available")
    from tests.conftest import create_pg_database, drop_pg_database

    url = create_pg_database("stich_cli")
    try:
        upgraded = _run("--database-url", url, "db", "upgrade", cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        check = _run("--database-url", url, "db", "check", cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        assert not (tmp_path / "stich.db").exists()
    finally:
        drop_pg_database(url)


def test_version(tmp_path: Path) -> None:
    result = _run("version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip()
