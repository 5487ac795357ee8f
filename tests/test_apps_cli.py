"""`stich apps purge`, run as an operator would: a separate process on a real database."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from stich.cli.apps import parse_duration
from stich.db import Database
from stich.db.base import utcnow
from stich.errors import Invalid
from tests.apps_support import live_fork_count, load_app, make_app, set_columns
from tests.cli_support import run_stich
from tests.factories import make_user


def _purge(database_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``stich apps purge *args`` against ``database_url``."""
    return run_stich("--database-url", database_url, "apps", "purge", *args, cwd=cwd)


def test_purge_command_in_batches(db: Database, database_url: str, tmp_path: Path) -> None:
    owner = make_user(db)
    expired = [make_app(db, owner) for _ in range(5)]
    parent = make_app(db, owner)
    expired_fork = make_app(db, owner, parent_app_id=parent)
    recent = make_app(db, owner)
    live = make_app(db, owner)
    for app_id in [*expired, expired_fork]:
        set_columns(db, app_id, deleted_at=utcnow() - timedelta(days=45))
    set_columns(db, recent, deleted_at=utcnow() - timedelta(days=3))

    dry = _purge(database_url, "--older-than", "30d", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("6 apps")
    assert load_app(db, expired[0]) is not None

    result = _purge(database_url, "--older-than", "30d", "--batch-size", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "purged 6 apps" in result.stdout
    assert "purging apps" in result.stderr  # the progress bar
    for app_id in [*expired, expired_fork]:
        assert load_app(db, app_id) is None
    for kept in (parent, recent, live):
        assert load_app(db, kept) is not None
    assert load_app(db, parent).fork_count == live_fork_count(db, parent) == 0  # type: ignore[union-attr]

    # A shorter age reaches the recently deleted app too; nothing is left after that.
    again = _purge(database_url, "--older-than", "1d", cwd=tmp_path)
    assert "purged 1 apps" in again.stdout
    assert load_app(db, recent) is None


def test_purge_refuses_a_bad_duration(db: Database, database_url: str, tmp_path: Path) -> None:
    result = _purge(database_url, "--older-than", "a month", cwd=tmp_path)
    assert result.returncode == 1
    assert "not a duration" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("45s", timedelta(seconds=45)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d", "-1d", "1w", "1.5d", "9999999d"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(Invalid):
        parse_duration(text)
