"""SQLite writers of one process queue in the process, not in SQLite's busy handler."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, text

from stich.db import Database
from stich.db.writer_lock import SqliteWriterLock
from stich.errors import RetryLater


def test_writers_of_one_process_take_turns_before_touching_the_database(db: Database) -> None:
    begins: list[str] = []

    def on_statement(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # Before the driver runs it: a BEGIN IMMEDIATE that then waits for SQLite's lock
        # is seen here already. (PostgreSQL's first statement stands for its BEGIN.)
        name = threading.current_thread().name
        if name not in begins:
            begins.append(name)

    holding, release = threading.Event(), threading.Event()

    def first() -> None:
        with db.write() as uow:
            uow.session.execute(text("SELECT 1"))
            holding.set()
            release.wait(10)

    def second() -> None:
        with db.write() as uow:
            uow.session.execute(text("SELECT 1"))

    event.listen(db.primary, "before_cursor_execute", on_statement)
    try:
        one = threading.Thread(target=first, name="first")
        one.start()
        assert holding.wait(10)
        two = threading.Thread(target=second, name="second")
        two.start()
        time.sleep(0.2)  # long enough for the second writer to have begun, if it could
        if db.backend == "sqlite":
            # Queued on the process's writer lock: no BEGIN IMMEDIATE polling the file lock.
            assert begins == ["first"]
        else:
            deadline = time.monotonic() + 10
            while "second" not in begins and time.monotonic() < deadline:
                time.sleep(0.01)
            assert "second" in begins  # PostgreSQL: rows lock, not the database
        release.set()
        one.join(10)
        two.join(10)
    finally:
        release.set()
        event.remove(db.primary, "before_cursor_execute", on_statement)
    assert begins[:2] == ["first", "second"]  # and the queued writer went next


def test_writers_of_other_processes_queue_on_the_lock_file(tmp_path: Path) -> None:
    database = tmp_path / "stich.db"
    lock_file = tmp_path / "stich.db-writer.lock"
    waiting = SqliteWriterLock(database, timeout_s=0.2)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_FILE, str(lock_file)],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(RetryLater) as refused, waiting.turn():
            pass
        assert refused.value.code == "database_busy"
        assert holder.stdin is not None
        holder.stdin.close()  # let go
        holder.wait(10)
        with waiting.turn():  # served as soon as the other process let go
            pass
    finally:
        holder.kill()
        waiting.close()


HOLD_THE_FILE = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
"""
