"""At most one runner of a background job per database, across processes and hosts.

`stich serve --workers N` starts N processes, each with the embedded worker; several
`stich worker` processes may run beside them. Scheduled maintenance must run in only one
of them at a time, or each process repeats the same scans. The lock is the database's own
when it can be shared between hosts (a PostgreSQL session advisory lock, released when its
connection ends, so a crashed runner frees it), and an ``flock`` of a file beside an SQLite
database (one host by nature; freed by the kernel when the process dies). Never waits: a
process that does not get the lock skips this turn.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from stich.db.session import Database


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key for ``pg_try_advisory_lock`` from a job name."""
    digest = hashlib.sha256(f"stich:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def single_runner(db: Database, name: str) -> Iterator[bool]:
    """Yield True when this process holds the ``name`` lock (run), False when another does."""
    if db.backend == "postgresql":
        with db.primary.connect() as connection:
            key = _advisory_key(name)
            lock = text("SELECT pg_try_advisory_lock(:k)")
            held = bool(connection.execute(lock, {"k": key}).scalar())
            connection.commit()
            try:
                yield held
            finally:
                if held:
                    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    connection.commit()
        return
    database = db.settings.url.database
    if not database or ":memory:" in database:  # an in-memory database is one process's
        yield True
        return
    path = Path(database).resolve()
    with _file_lock(path.with_name(f"{path.name}-{name}.lock")) as held:
        yield held


@contextmanager
def _file_lock(path: Path) -> Iterator[bool]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only directory: nobody else can coordinate either
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
