"""Engine construction for SQLite (pragmas, BEGIN IMMEDIATE) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

from stich.db.faults import Fault, classify

SQLITE_BEGIN_OPTION = "stich_sqlite_begin"
SQLITE_CACHE_KIB = 32 * 1024  # per connection
SQLITE_MMAP_BYTES = 1 << 30  # address space, not memory: pages come from the OS cache
SQLITE_CHECKPOINT_PAGES = 10_000
SQLITE_WAL_LIMIT_BYTES = 64 << 20  # the WAL file is truncated back to this after a checkpoint


def create_sqlite_engine(
    url: str | URL,
    *,
    busy_timeout_ms: int = 5000,
    foreign_keys: bool = True,
    read_only: bool = False,
) -> Engine:
    """A SQLite engine in WAL mode whose transactions we begin ourselves.

    The stdlib driver's implicit transaction handling is switched off so that a write
    unit of work can issue ``BEGIN IMMEDIATE``: it takes the write lock up front, and a
    concurrent writer waits up to ``busy_timeout`` instead of failing mid-transaction with
    "database is locked" when it upgrades a read lock. Read engines use ``query_only`` so
    a write through them fails loudly.
    """
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see below)
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # A bigger page cache than SQLite's 2 MB, and reads through a memory map (shared
            # by every connection and process through the OS page cache): index pages of a
            # batch of views are found without a read() each.
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cursor.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            # Checkpoint every ~40 MB of WAL instead of 4 MB: pages every batch rewrites
            # (counters, rollups, index roots) are copied back once per checkpoint, so
            # fewer checkpoints is less work, not just the same work later.
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
            cursor.execute(f"PRAGMA journal_size_limit={SQLITE_WAL_LIMIT_BYTES}")
            cursor.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")
            if read_only:
                cursor.execute("PRAGMA query_only=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode == "DEFERRED":
            # Straight to the driver: a deferred BEGIN takes no lock and cannot fail, and
            # going through exec_driver_sql was a quarter of a small read's Python time.
            conn.connection.driver_connection.execute("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql(f"BEGIN {mode}")  # IMMEDIATE can be busy: errors as usual

    if not read_only:
        reconnect_when_read_only(engine)
    return engine


def reconnect_when_read_only(engine: Engine) -> None:
    """Drop the pool's connections when a write finds the database read-only.

    A SQLite connection opened while its file was not writable stays read-only for
    good, and a PostgreSQL connection to a primary that was demoted (or started with
    ``default_transaction_read_only``) keeps refusing writes after the cause is gone;
    pooled, they would fail every write until a restart. Treated as a disconnect,
    SQLAlchemy invalidates the pool, and the next unit of work opens fresh connections.
    Only for write pools: on a read-only pool the same error is a programming error.
    """

    @event.listens_for(engine, "handle_error")
    def _read_only(context: ExceptionContext) -> None:
        if classify(context.original_exception) is Fault.READ_ONLY:
            context.is_disconnect = True


# A pooled connection idle at least this long is pinged before use (see below).
PING_AFTER_IDLE_SECONDS = 2.0


def create_postgres_engine(
    url: str | URL,
    *,
    pool_size: int = 15,
    application_name: str = "stich",
    read_only: bool = False,
) -> Engine:
    """A pooled psycopg 3 engine whose connections are pinged only after sitting idle.

    ``read_only``: the primary's pool for read units of work. Its connections refuse
    writes (``default_transaction_read_only``) and run in autocommit, each statement its
    own read-only transaction: at READ COMMITTED every statement takes a fresh snapshot
    anyway, so a BEGIN ... ROLLBACK around a read bought nothing but two round trips.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, a third of a
    small read's time on a busy server. Connections idle for less than
    ``PING_AFTER_IDLE_SECONDS`` were just used and are handed out as they are; older
    ones, the ones a server restart or an idle timeout would have cut, are pinged first
    and replaced if dead (SQLAlchemy's pessimistic recipe: raising DisconnectionError at
    checkout makes the pool connect afresh). A connection that dies within the window
    fails its statement; SQLAlchemy then invalidates the whole pool, so one request sees
    the error, not one per pooled connection.
    """
    connect_args: dict[str, Any] = {"application_name": application_name, "connect_timeout": 5}
    options: dict[str, Any] = {}
    if read_only:
        connect_args["options"] = "-c default_transaction_read_only=on"
        options["isolation_level"] = "AUTOCOMMIT"
    engine = create_engine(
        url,
        # No overflow: an overflow connection is closed when returned, so under steady
        # concurrency every request past the pool opened (forked) a new backend; a pool of
        # the same bound kept open serves them without that (detail 414 -> 704 req/s).
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args=connect_args,
        **options,
    )

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        record.info["stich_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get("stich_idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # whatever the driver raises for a dead connection
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")

    if not read_only:
        reconnect_when_read_only(engine)
    return engine


def create_engine_for(url: str | URL, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite_options = {
            k: v for k, v in kwargs.items() if k in ("busy_timeout_ms", "foreign_keys", "read_only")
        }
        return create_sqlite_engine(parsed, **sqlite_options)
    pg_options = {k: v for k, v in kwargs.items() if k in ("pool_size", "application_name")}
    return create_postgres_engine(parsed, **pg_options)
