"""Database faults answer 503 with Retry-After, not an opaque 500 (issue 13, items 5-7).

Each fault is provoked for real: a second connection holding the write lock, a database
that cannot grow, a database that is read-only and then writable again.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import event, make_url, text
from structlog.testing import capture_logs

from stich.config import Settings
from stich.db import Database
from stich.db.faults import Fault, WriteHealth
from stich.errors import RetryLater
from tests.conftest import _admin_connect, _libpq, make_settings
from tests.factories import SignedIn, make_user

# Big enough to need new pages: a database that cannot grow cannot store it.
BIG_APP = {"title": "Big", "blueprint": {"notes": "x" * 60_000}}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    # A short busy timeout (SQLite), so a held write lock is noticed quickly.
    return make_settings(database_url, tmp_path, sqlite_busy_timeout_ms=50)


def _sqlite_path(db: Database) -> str:
    path = make_url(db.settings.url).database
    assert path is not None
    return path


@contextmanager
def _pg_admin(db: Database) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(
        _libpq(db.settings.url.render_as_string(hide_password=False)), autocommit=True
    ) as conn:
        yield conn


@contextmanager
def _database_setting(db: Database, name: str, value: str) -> Iterator[None]:
    """``ALTER DATABASE ... SET`` for connections opened from now on (PostgreSQL)."""
    database = make_url(db.settings.url).database
    with _admin_connect() as conn:  # from another database: the setting may be read-only
        conn.execute(f'ALTER DATABASE "{database}" SET {name} = {value}')
    db.primary.dispose()  # the pool's connections predate the setting
    try:
        yield
    finally:
        with _admin_connect() as conn:
            conn.execute(f'ALTER DATABASE "{database}" RESET {name}')


def _assert_retry_later(response: Response, code: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) >= 1


# --- item 5: write contention ----------------------------------------------------------


@contextmanager
def _write_lock_held(db: Database) -> Iterator[None]:
    """Another connection holds the write lock on the apps table until the block ends."""
    if db.backend == "sqlite":
        writer = sqlite3.connect(_sqlite_path(db), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
            writer.close()
        return
    # PostgreSQL waits for locks as long as lock_timeout says (operators set it per role).
    with (
        _database_setting(db, "lock_timeout", "'50ms'"),
        psycopg.connect(_libpq(db.settings.url.render_as_string(hide_password=False))) as locker,
    ):
        locker.execute("LOCK TABLE apps IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            locker.rollback()


def test_a_write_that_cannot_get_the_lock_answers_503_busy(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    with _write_lock_held(db):
        busy = client.post("/api/apps", json={"title": "Waits"}, headers=user.headers)
        ready = client.get("/readyz")
    _assert_retry_later(busy, "database_busy")
    assert ready.status_code == 200  # contention is not a reason to leave rotation
    after = client.post("/api/apps", json={"title": "Waits"}, headers=user.headers)
    assert after.status_code == 201, after.text


# --- item 6: disk full -----------------------------------------------------------------


@contextmanager
def _storage_full(db: Database) -> Iterator[None]:
    """The database cannot grow until the block ends: a real SQLITE_FULL (the pages it
    may use are capped at what it has) or PostgreSQL's disk_full raised by the server."""
    if db.backend == "sqlite":
        raw = sqlite3.connect(_sqlite_path(db), isolation_level=None)
        raw.execute("VACUUM")  # no free pages to reuse
        [(pages,)] = raw.execute("PRAGMA page_count").fetchall()
        [(unlimited,)] = raw.execute("PRAGMA max_page_count").fetchall()
        raw.close()
        cap = {"pages": pages}

        def _apply_cap(dbapi_conn: sqlite3.Connection, *_args: Any) -> None:
            dbapi_conn.execute(f"PRAGMA max_page_count = {int(cap['pages'])}")

        event.listen(db.primary, "checkout", _apply_cap)
        try:
            yield
        finally:
            cap["pages"] = unlimited  # space frees; the pooled connections are kept
        return
    with _pg_admin(db) as conn:
        conn.execute(
            "CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'could not extend file: No space left on device' "
            "USING ERRCODE = 'disk_full'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER test_disk_full BEFORE INSERT ON apps "
            "FOR EACH ROW EXECUTE FUNCTION test_disk_full()"
        )
    try:
        yield
    finally:
        with _pg_admin(db) as conn:
            conn.execute("DROP TRIGGER test_disk_full ON apps")
            conn.execute("DROP FUNCTION test_disk_full()")


def _events(logs: list[MutableMapping[str, Any]], prefix: str) -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if str(entry["event"]).startswith(prefix)]


def test_disk_full_answers_503_logs_once_and_readyz_reports_it(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    with capture_logs() as logs:
        with _storage_full(db):
            failures = [client.post("/api/apps", json=BIG_APP, headers=user.headers)]
            failures.append(client.post("/api/apps", json=BIG_APP, headers=user.headers))
            ready = client.get("/readyz")
        recovered = client.post("/api/apps", json=BIG_APP, headers=user.headers)
        ready_again = client.get("/readyz")

    for failure in failures:
        _assert_retry_later(failure, "storage_full")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "storage_full"
    assert ready.json()["error"]["details"]["reason"] == "recent_write_failure"
    assert ready.json()["error"]["details"]["failed_writes"] == 2
    # Writes come back by themselves, and readiness with them.
    assert recovered.status_code == 201, recovered.text
    assert ready_again.status_code == 200
    assert len(_events(logs, "database writes failing")) == 1  # once per episode
    [back] = _events(logs, "database writes recovered")
    assert back["failed_writes"] == 2


# --- item 7: a read-only database recovers without a restart ---------------------------


@contextmanager
def _sqlite_file_read_only(path: str) -> Iterator[None]:
    """The database file cannot be opened for writing until the block ends. Root ignores
    file modes, so as root the file is made immutable instead (chattr +i)."""
    if os.geteuid() != 0:
        mode = os.stat(path).st_mode
        os.chmod(path, 0o444)
        try:
            yield
        finally:
            os.chmod(path, mode)
        return
    try:
        made = subprocess.run(["chattr", "+i", path], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("running as root without chattr: cannot make the file read-only")
    if made.returncode != 0:
        pytest.skip(f"running as root and chattr +i is unavailable here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", path], check=True)


@contextmanager
def _read_only(db: Database) -> Iterator[None]:
    """Connections opened in the block cannot write: a SQLite file that is not writable,
    or a PostgreSQL database whose sessions default to read-only (as on a demoted primary)."""
    if db.backend == "sqlite":
        with _sqlite_file_read_only(_sqlite_path(db)):
            for engine in db.engines:
                engine.dispose()  # connections opened from now on are read-only
            yield
        return
    with _database_setting(db, "default_transaction_read_only", "on"):
        yield


def test_a_read_only_database_answers_503_and_recovers_without_restart(
    client: TestClient, db: Database
) -> None:
    user = make_user(db)
    with _read_only(db):
        refused = client.post("/api/apps", json={"title": "RO"}, headers=user.headers)
        ready = client.get("/readyz")
    _assert_retry_later(refused, "database_read_only")
    assert ready.status_code == 503
    assert ready.json()["error"]["code"] == "database_read_only"
    # Writable again: the same Database reopens its connections instead of failing forever.
    created = client.post("/api/apps", json={"title": "RW"}, headers=user.headers)
    assert created.status_code == 201, created.text
    assert client.get(f"/api/apps/{created.json()['id']}", headers=user.headers).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_write_unit_of_work_raises_retry_later_outside_http(db: Database) -> None:
    """The CLI and library callers get the same error (RetryLater), not a driver error."""
    user: SignedIn = make_user(db)
    with _read_only(db), pytest.raises(RetryLater) as raised, db.write() as uow:
        uow.session.execute(
            text("UPDATE users SET display_name = 'x' WHERE id = :id"), {"id": user.user_id}
        )
    assert raised.value.code == Fault.READ_ONLY.value
    assert db.write_health.current() is not None


def _real_sqlite_full() -> sqlite3.Error:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (b BLOB)")
    conn.execute("PRAGMA max_page_count = 2")
    try:
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
    except sqlite3.Error as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("a capped database took a row larger than its cap")


def test_readiness_forgets_a_storage_fault_no_write_has_renewed() -> None:
    """Taken out of rotation, a process gets no writes to prove it recovered: its report
    lapses, so it is tried again (and a failing write renews it)."""
    now = [0.0]
    health = WriteHealth(report_seconds=30, clock=lambda: now[0])
    full = _real_sqlite_full()
    assert health.failed(full) is not None
    assert health.current() is not None
    now[0] = 31.0
    assert health.current() is None
    health.failed(full)
    assert health.current() is not None
    health.succeeded()
    assert health.current() is None
