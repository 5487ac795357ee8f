"""Routing pieces that need no cluster: positions, monotonic bookmarks, failure kinds,
settings, and the SQLite path that must behave exactly as before."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from stich.config import SettingsError, load_settings
from stich.db import Database
from stich.db.replicas import is_replica_failure, parse_lsn
from stich.db.routing import Bookmark, later
from tests.conftest import make_settings


def test_lsn_positions_compare_as_wal_positions() -> None:
    assert parse_lsn("0/0") == 0
    assert parse_lsn("16/B374D848") == (0x16 << 32) | 0xB374D848
    assert parse_lsn("1/0") > parse_lsn("0/FFFFFFFF")
    bookmark = Bookmark.from_pg_lsn("16/B374D848")
    assert bookmark.pg_lsn() == "16/B374D848"
    assert Bookmark.parse(bookmark.encode()) == bookmark


def test_bookmarks_only_move_forward() -> None:
    given = Bookmark("pg", 500)
    assert later(given, Bookmark("pg", 400)) == given
    assert later(given, Bookmark("pg", 900)) == Bookmark("pg", 900)
    assert later(None, given) == later(given, None) == given
    assert later(None, None) is None


def _wrapped(orig: Exception, *, invalidated: bool = False) -> DBAPIError:
    """The error SQLAlchemy raises for ``orig`` (as it does when a statement fails)."""
    wrapped = DBAPIError.instance(
        "SELECT 1", {}, orig, psycopg.Error, connection_invalidated=invalidated
    )
    assert isinstance(wrapped, DBAPIError)
    return wrapped


@pytest.mark.parametrize(
    ("orig", "invalidated", "retry"),
    [
        (psycopg.errors.SerializationFailure("conflict with recovery"), False, True),
        (psycopg.errors.DeadlockDetected("conflict with recovery"), False, True),
        (psycopg.errors.AdminShutdown("terminating connection"), True, True),
        (psycopg.errors.AdminShutdown("terminating connection"), False, True),
        (psycopg.OperationalError("connection failed"), False, True),
        (psycopg.errors.ConnectionFailure("connection failure"), False, True),
        (psycopg.errors.UndefinedTable("no such table"), False, False),
        (psycopg.errors.ReadOnlySqlTransaction("read-only"), False, False),
        (psycopg.errors.QueryCanceled("statement timeout"), False, False),
    ],
)
def test_which_failures_move_a_read_off_its_replica(
    orig: Exception, invalidated: bool, retry: bool
) -> None:
    assert is_replica_failure(_wrapped(orig, invalidated=invalidated)) is retry


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("replica_max_lag_seconds", 0),
        ("replica_max_lag_bytes", -1),
        ("replica_bookmark_wait_ms", -5),
        ("replica_bookmark_wait_ms", 60_000),
        ("replica_check_interval_seconds", 0),
        ("replica_connect_timeout_seconds", 0),
        ("replica_answer_timeout_seconds", 0),
        ("replica_answer_timeout_seconds", 61),
    ],
)
def test_replica_settings_are_validated(setting: str, value: float) -> None:
    with pytest.raises(SettingsError, match=f"STICH_{setting.upper()}"):
        load_settings(**{setting: value})


def test_replica_settings_have_gitlab_defaults() -> None:
    settings = load_settings()
    assert settings.replica_max_lag_seconds == 60
    assert settings.replica_max_lag_bytes == 8 * 1024 * 1024


def test_sqlite_reads_stay_on_the_one_file_and_keep_bookmarks(tmp_path: Path) -> None:
    db = Database(make_settings(f"sqlite:///{tmp_path / 'plain.db'}", tmp_path))
    try:
        assert db.replicas is None
        with db.write() as uow:
            uow.session.execute(text("SELECT 1"))
        written = uow.bookmark
        assert written is not None
        for consistency in ("fast", "fresh", written):
            with db.read(consistency) as read:
                assert read.session.scalar(text("SELECT 1")) == 1
            assert read.served_by == "primary"
            assert read.bookmark == (written if consistency == written else None)
    finally:
        db.dispose()
