"""Database and file-system failures as one line: what is wrong and what to do.

:func:`stich.cli.main.run` prints :func:`explain` of a failure instead of a traceback
(``--debug`` or ``STICH_DEBUG=1`` shows the traceback too). Causes are recognised by code,
never by message text: SQLSTATE on PostgreSQL, ``sqlite_errorname`` on SQLite, ``errno``
on an OSError. libpq reports a failed *connection* as text only (psycopg's ``sqlstate``
is None then), so for those a short probe finds the cause: does anything answer on the
server's port, does the role get into the maintenance database, does the database exist.
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
from pathlib import Path

import psycopg
from alembic.util.exc import CommandError
from psycopg.conninfo import make_conninfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from stich.db import migrate

PROBE_TIMEOUT_SECONDS = 3
DEBUG_HINT = "run with --debug for the traceback"


class CliFailure(Exception):
    """A command cannot go on; ``str(exc)`` is the one line to print."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


EXPLAINED: tuple[type[BaseException], ...] = (
    SQLAlchemyError,  # DBAPIError and the rest (a pool timeout, say)
    sqlite3.Error,
    psycopg.Error,
    OSError,
    CommandError,
)


def explain(exc: BaseException, database_url: str | None) -> str:
    """One line for a database, migration or file-system failure (see ``EXPLAINED``)."""
    if isinstance(exc, DBAPIError):
        return _database(exc.orig or exc, database_url)
    if isinstance(exc, sqlite3.Error | psycopg.Error):
        return _database(exc, database_url)
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, CommandError):  # alembic: e.g. a revision it cannot find
        return f"migration failed: {_first_line(exc)}"
    return f"database error ({type(exc).__name__}): {_first_line(exc)}; {DEBUG_HINT}"


def _database(orig: BaseException, database_url: str | None) -> str:
    if isinstance(orig, sqlite3.Error):
        return _sqlite(orig, database_url)
    sqlstate: str | None = getattr(orig, "sqlstate", None)
    if sqlstate:
        return _postgres(sqlstate, orig, database_url)
    if isinstance(orig, psycopg.OperationalError):
        return _postgres_connection(orig, database_url)
    return _unrecognised(orig, None)


# --- SQLite ---------------------------------------------------------------------------


def _sqlite(orig: sqlite3.Error, database_url: str | None) -> str:
    name: str = getattr(orig, "sqlite_errorname", None) or ""
    primary = "_".join(name.split("_")[:2])  # SQLITE_READONLY_DIRECTORY -> SQLITE_READONLY
    path = _sqlite_path(database_url)
    if primary == "SQLITE_CANTOPEN":
        return _sqlite_cannot_open(path)
    if primary in ("SQLITE_READONLY", "SQLITE_PERM"):
        return (
            f"the SQLite database {path} is read-only for this user: make the file and its "
            "directory writable (SQLite writes its journal beside the file)"
        )
    if primary == "SQLITE_NOTADB":
        return f"{path} is not a SQLite database: check STICH_DATABASE_URL"
    if primary == "SQLITE_CORRUPT":
        return f"the SQLite database {path} is damaged: restore it from a backup"
    if primary == "SQLITE_FULL":
        return f"no space left for the SQLite database {path}: free disk space"
    if primary == "SQLITE_IOERR":
        return f"the disk failed reading or writing {path} ({name}): check the disk"
    if primary == "SQLITE_BUSY":
        return "the SQLite database is busy with another writer: try again shortly"
    # SQLITE_ERROR is SQLite's generic code ("no such table" among others): if the
    # schema is behind, that is the cause worth naming.
    return _pending_migration(database_url) or _unrecognised(orig, name)


def _sqlite_path(database_url: str | None) -> Path | None:
    if database_url is None:
        return None
    database = make_url(database_url).database
    return Path(database).absolute() if database else None


def _sqlite_cannot_open(path: Path | None) -> str:
    if path is None:
        return "cannot open the SQLite database: check STICH_DATABASE_URL"
    directory = path.parent
    if not directory.is_dir():
        return (
            f"cannot open the SQLite database {path}: the directory {directory} does not "
            f"exist; create it (mkdir -p {directory}) or fix STICH_DATABASE_URL"
        )
    if not path.exists() and not os.access(directory, os.W_OK | os.X_OK):
        return (
            f"cannot create the SQLite database {path}: the directory {directory} is not "
            "writable by this user; make it writable or choose another path"
        )
    return (
        f"cannot open the SQLite database {path}: make the file and its directory "
        "readable and writable by this user"
    )


# --- PostgreSQL -----------------------------------------------------------------------

_PG_ADVICE: dict[str, str] = {
    "42501": "the database role lacks a privilege this needs: grant it, or connect as "
    "the role that owns the tables",
    "53100": "the PostgreSQL server has no disk space left: free space on its volume",
    "53300": "the PostgreSQL server has no free connection slots: try again, or raise "
    "max_connections",
    "25006": "the PostgreSQL server is read-only (a standby?): point STICH_DATABASE_URL "
    "at the primary",
    "57P01": "the PostgreSQL server is shutting down: try again when it is back",
    "57P02": "the PostgreSQL server is shutting down: try again when it is back",
    "57P03": "the PostgreSQL server is starting up: try again shortly",
    "28P01": "PostgreSQL refused the password: check the user and password in STICH_DATABASE_URL",
    "28000": "PostgreSQL refused the role: check the user in STICH_DATABASE_URL and pg_hba.conf",
    "3D000": "the database does not exist: create it (createdb), then run `stich db upgrade`",
}
_PG_SCHEMA_BEHIND = ("42P01", "42703")  # undefined_table, undefined_column


def _postgres(sqlstate: str, orig: BaseException, database_url: str | None) -> str:
    if sqlstate in _PG_SCHEMA_BEHIND:
        return _pending_migration(database_url) or _unrecognised(orig, sqlstate)
    if sqlstate in _PG_ADVICE:
        return _PG_ADVICE[sqlstate]
    if sqlstate.startswith("08"):  # connection exception
        return "lost the connection to PostgreSQL: check that the server runs, then try again"
    return _unrecognised(orig, sqlstate)


def _postgres_connection(orig: psycopg.OperationalError, database_url: str | None) -> str:
    params = _conninfo(orig) or _url_params(database_url)
    host = params.get("host", "").split(",")[0] or "/var/run/postgresql"
    port = params.get("port", "").split(",")[0] or "5432"
    user = params.get("user", "")
    dbname = params.get("dbname", user)
    where = f"{host}:{port}"
    unreachable = _unreachable(host, port)
    if unreachable:
        return unreachable
    # The server answers: ask it, through its maintenance database, what is wrong.
    maintenance = "template1" if dbname == "postgres" else "postgres"
    probe = {**params, "dbname": maintenance, "connect_timeout": str(PROBE_TIMEOUT_SECONDS)}
    try:
        with psycopg.connect(make_conninfo(**probe)) as conn:
            row = conn.execute(
                "SELECT has_database_privilege(datname, 'CONNECT') FROM pg_database "
                "WHERE datname = %s",
                [dbname],
            ).fetchone()
    except psycopg.Error:
        return (
            f"PostgreSQL at {where} refused the role {user!r}: check the user and password in "
            "STICH_DATABASE_URL (the role must exist, and pg_hba.conf must let it in)"
        )
    if row is None:
        return (
            f"the database {dbname!r} does not exist on PostgreSQL at {where}: create it "
            f"(createdb -h {host} -p {port} -U {user} {dbname}), then run `stich db upgrade`"
        )
    if not row[0]:
        return (
            f"the role {user!r} may not connect to the database {dbname!r}: "
            f"GRANT CONNECT ON DATABASE {dbname} TO {user}, or use another role"
        )
    return _unrecognised(orig, None)


def _conninfo(orig: psycopg.OperationalError) -> dict[str, str]:
    pgconn = orig.pgconn
    if pgconn is None:
        return {}
    return {
        option.keyword.decode(): option.val.decode()
        for option in pgconn.info
        if option.val is not None and option.val != b""
    }


def _url_params(database_url: str | None) -> dict[str, str]:
    """libpq parameters from the URL, when the failed connection kept none (no host)."""
    if database_url is None:
        return {}
    url = make_url(database_url)
    values = {
        "host": url.host,
        "port": str(url.port) if url.port else None,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
    }
    return {key: value for key, value in values.items() if value}


def _unreachable(host: str, port: str) -> str | None:
    """Why nothing answers at host:port, or None when something does."""
    if host.startswith("/"):  # a Unix socket directory
        socket_path = Path(host) / f".s.PGSQL.{port}"
        if not socket_path.exists():
            return (
                f"no PostgreSQL server listens on {socket_path}: start the server, or check "
                "the host and port in STICH_DATABASE_URL"
            )
        return None
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_SECONDS).close()
    except socket.gaierror:
        return f"cannot resolve the PostgreSQL host {host!r}: check the host in STICH_DATABASE_URL"
    except (OSError, ValueError) as exc:
        reason = _errno_name(exc) if isinstance(exc, OSError) else "bad port"
        return (
            f"cannot reach PostgreSQL at {host}:{port} ({reason}): start the server, or check "
            "the host and port in STICH_DATABASE_URL"
        )
    return None


# --- shared ---------------------------------------------------------------------------


def _pending_migration(database_url: str | None) -> str | None:
    """The one line naming the revisions when the schema is behind (or ahead), else None."""
    if database_url is None:
        return None
    from stich.db.engine import create_engine_for

    engine = create_engine_for(database_url)
    try:
        state = migrate.migration_state(engine)
    except SQLAlchemyError:
        return None
    finally:
        engine.dispose()
    return None if state.at_head else state.describe()


def _os_error(exc: OSError) -> str:
    path = Path(os.fsdecode(exc.filename)) if exc.filename is not None else None
    code = exc.errno
    if path is not None and code == errno.ENOENT and not path.parent.is_dir():
        return (
            f"the directory {path.parent} does not exist: create it (mkdir -p {path.parent}) "
            "or fix the path"
        )
    if path is not None and code in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on {path}: make it (and its directory) writable by this user, "
            "or choose another path"
        )
    if path is not None and code == errno.ENOTDIR:
        return f"{path}: a part of this path is a file, not a directory; fix the path"
    if path is not None and code == errno.EROFS:
        return f"{path} is on a read-only file system: choose a writable path"
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device{f' for {path}' if path else ''}: free disk space"
    where = f": {path}" if path is not None else ""
    return f"{exc.strerror or type(exc).__name__} ({_errno_name(exc)}){where}; {DEBUG_HINT}"


def _errno_name(exc: OSError) -> str:
    if exc.errno is None:
        return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
    return errno.errorcode.get(exc.errno, str(exc.errno))


def _unrecognised(orig: BaseException, code: str | None) -> str:
    label = code or type(orig).__name__
    return f"database error ({label}): {_first_line(orig)}; {DEBUG_HINT}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
