"""The command line, run as a user would: through the installed `stich` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import run_stich


def test_bad_database_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run_stich("serve", cwd=tmp_path, env={"STICH_DATABASE_URL": "nonsense"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "STICH_DATABASE_URL" in lines[0]
    assert "Traceback" not in result.stderr


def test_db_commands_on_the_default_sqlite_file(tmp_path: Path) -> None:
    assert run_stich("db", "current", cwd=tmp_path).stdout.strip() == "(empty database)"
    upgraded = run_stich("db", "upgrade", cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (tmp_path / "stich.db").exists()
    current = run_stich("db", "current", cwd=tmp_path)
    assert "(head)" in current.stdout
    check = run_stich("db", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "agree" in check.stdout
    history = run_stich("db", "history", cwd=tmp_path)
    assert "0001" in history.stdout
    down = run_stich("db", "downgrade", "base", cwd=tmp_path)
    assert down.returncode == 0, down.stderr
    assert run_stich("db", "current", cwd=tmp_path).stdout.strip() == "(empty database)"


def test_db_check_fails_on_an_unmigrated_database(tmp_path: Path) -> None:
    result = run_stich("db", "check", cwd=tmp_path)
    assert result.returncode != 0


@pytest.mark.usefixtures("postgres_available")
def test_database_url_option_reaches_postgres(tmp_path: Path, postgres_available: bool) -> None:
    if not postgres_available:
        pytest.skip("PostgreSQL is not available")
    from tests.conftest import create_pg_database, drop_pg_database

    url = create_pg_database("stich_cli")
    try:
        upgraded = run_stich("--database-url", url, "db", "upgrade", cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        check = run_stich("--database-url", url, "db", "check", cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        assert not (tmp_path / "stich.db").exists()
    finally:
        drop_pg_database(url)


def test_version(tmp_path: Path) -> None:
    result = run_stich("version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip()
