"""Engine construction for SQLite (pragmas, BEGIN IMMEDIATE) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

SQLITE_BEGIN_OPTION = "stich_sqlite_begin"


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

    return engine


def create_postgres_engine(
    url: str | URL, *, pool_size: int = 5, application_name: str = "stich"
) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )


def create_engine_for(url: str | URL, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        sqlite_options = {
            k: v for k, v in kwargs.items() if k in ("busy_timeout_ms", "foreign_keys", "read_only")
        }
        return create_sqlite_engine(parsed, **sqlite_options)
    pg_options = {k: v for k, v in kwargs.items() if k in ("pool_size", "application_name")}
    return create_postgres_engine(parsed, **pg_options)
