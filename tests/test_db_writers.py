"""SQLite writers of one process queue in the process, not in SQLite's busy handler."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, text

from stich.db import Database


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
            assert "second" in begins  # PostgreSQL: rows lock, not the database
        release.set()
        one.join(10)
        two.join(10)
    finally:
        release.set()
        event.remove(db.primary, "before_cursor_execute", on_statement)
    assert begins[:2] == ["first", "second"]  # and the queued writer went next
