"""The unit of work: ``db.write()`` and ``db.read(consistency)``.

A write unit of work runs on the primary in one transaction and commits once, on leaving
the ``with`` block; the commit yields a bookmark. A read unit of work is read-only, on the
node its consistency chooses: ``"fast"`` (any healthy node), ``"fresh"`` (the primary) or
a bookmark string (a node that has caught up to it). On SQLite and on a replica its
statements share one transaction; on the PostgreSQL primary each is its own read-only
transaction (see :meth:`Database.read`).

    with db.write() as uow:
        AppService(uow.session).create(...)
    uow.bookmark  # -> "MTpwZzowLzE2QjM3NEQ0OA"

    with db.read(uow.bookmark) as uow:
        ...

With ``STICH_READ_REPLICA_URLS`` set (PostgreSQL), reads are routed by
:class:`stich.db.routing.ReadRouter`; ``uow.served_by`` says which node served the unit of
work ("primary", "replica-1", ...). A replica that fails mid-read (lost connection, or a
query cancelled by a recovery conflict) is replaced by the primary for the statement that
failed and the rest of the unit of work, transparently, as long as the failure surfaces
while a statement executes (psycopg fetches results whole, so it does): ORM and Core
statements through ``uow.session``, and compiled driver SQL through
:func:`run_driver_sql`. Statements run on ``uow.session.connection()`` directly bypass
that retry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import structlog
from sqlalchemy import Connection, Engine, Result, event, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker

from stich.config import Settings
from stich.db.engine import SQLITE_BEGIN_OPTION, create_postgres_engine, create_sqlite_engine
from stich.db.errors import (
    ReadOnlyTransactionError,
    is_read_only_violation,
    translate_integrity_error,
)
from stich.db.faults import WriteHealth
from stich.db.instrumentation import ReadRouteEvent, instrument_engine, record_read_route
from stich.db.replicas import ReplicaSet, is_replica_failure
from stich.db.routing import PRIMARY, Bookmark, ReadRoute, ReadRouter, later, sqlite_bookmark
from stich.db.writer_lock import SqliteWriterLock
from stich.errors import Invalid

Consistency = Literal["fast", "fresh"] | str
Mode = Literal["write", "read"]
_UOW_KEY = "stich_unit_of_work"
log = structlog.get_logger("stich.db")


@dataclass
class UnitOfWork:
    """One transaction: its session, which node served it and the bookmark it yields."""

    session: Session
    mode: Mode
    served_by: str = PRIMARY
    consistency: str = "fresh"
    _bookmark: Bookmark | None = field(default=None, repr=False)
    _route: ReadRoute | None = field(default=None, repr=False)
    _router: ReadRouter | None = field(default=None, repr=False)

    @property
    def bookmark(self) -> str | None:
        """For a write, the position of its commit; for a read (once it ends), a position
        at or after everything it read."""
        return self._bookmark.encode() if self._bookmark else None

    @property
    def committed(self) -> bool:
        return self.mode == "write" and self._bookmark is not None

    def _may_fail_over(self) -> bool:
        return self._router is not None and self._route is not None and self._route.on_replica


class Database:
    """Engines for one deployment, and the units of work that use them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = settings.backend
        self._sqlite_writer = (
            SqliteWriterLock(_sqlite_file(settings), settings.sqlite_busy_timeout_ms / 1000)
            if self.backend == "sqlite"
            else None
        )
        if self.backend == "sqlite":
            self.primary = create_sqlite_engine(
                settings.url, busy_timeout_ms=settings.sqlite_busy_timeout_ms
            )
            self._write_bind: Engine = self.primary.execution_options(
                **{SQLITE_BEGIN_OPTION: "IMMEDIATE"}
            )
            # A separate pool whose connections refuse writes (PRAGMA query_only).
            self._sqlite_reader: Engine | None = create_sqlite_engine(
                settings.url, busy_timeout_ms=settings.sqlite_busy_timeout_ms, read_only=True
            )
            instrument_engine(
                self._sqlite_reader, name="primary", slow_query_ms=settings.slow_query_ms
            )
            self._read_bind: Engine = self._sqlite_reader
            self._pg_reader: Engine | None = None
        else:
            self.primary = create_postgres_engine(settings.url, pool_size=settings.pool_size)
            self._sqlite_reader = None
            self._write_bind = self.primary
            # Reads have their own pool: read-only, autocommit (see create_postgres_engine).
            reader = create_postgres_engine(
                settings.url, pool_size=settings.pool_size, read_only=True
            )
            instrument_engine(reader, name="primary", slow_query_ms=settings.slow_query_ms)
            self._pg_reader = reader
            self._read_bind = reader
        instrument_engine(self.primary, name="primary", slow_query_ms=settings.slow_query_ms)
        self._sessions = sessionmaker(expire_on_commit=False, autoflush=True)
        # Storage faults (full, read-only) seen by writes; /readyz reports them.
        self.write_health = WriteHealth()
        # Replicas (PostgreSQL only; settings refuse them with SQLite). Their health thread
        # starts on the first read that may use them and stops in dispose().
        self.replicas: ReplicaSet | None = None
        self._router: ReadRouter | None = None
        if self.backend == "postgresql" and settings.read_replica_urls:
            self.replicas = ReplicaSet(settings, self.primary)
            self._router = ReadRouter(
                self.replicas, self._read_bind, wait_ms=settings.replica_bookmark_wait_ms
            )
            event.listen(self._sessions, "do_orm_execute", self._retry_off_failed_replica)

    @property
    def engines(self) -> list[Engine]:
        engines = [self.primary]
        if self._sqlite_reader is not None:
            engines.append(self._sqlite_reader)
        if self._pg_reader is not None:
            engines.append(self._pg_reader)
        if self.replicas is not None:
            engines.extend(self.replicas.engines)
        return engines

    def dispose(self) -> None:
        """Stop the replica health thread and close every pooled connection."""
        if self.replicas is not None:
            self.replicas.stop()
        for engine in self.engines:
            engine.dispose()
        if self._sqlite_writer is not None:
            self._sqlite_writer.close()

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """A read-write transaction on the primary, committed when the block ends cleanly.

        Integrity errors (from a flush inside the block or from the commit) leave as
        Conflict / NotFound / Invalid; a busy, full or read-only database as RetryLater
        (see stich.db.faults); any exception rolls everything back.
        """
        with self._writer_turn():
            yield from self._write()

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """On SQLite, writers take turns before touching the file (db/writer_lock.py)."""
        if self._sqlite_writer is None:
            yield
            return
        with self._sqlite_writer.turn():
            yield

    def _write(self) -> Iterator[UnitOfWork]:
        session = self._sessions(bind=self._write_bind)
        uow = UnitOfWork(session=session, mode="write")
        try:
            try:
                yield uow
                session.commit()
            except (IntegrityError, DataError) as exc:
                session.rollback()
                raise translate_integrity_error(exc) from exc
            except DBAPIError as exc:
                session.rollback()
                fault = self.write_health.failed(exc)
                if fault is None:
                    raise
                raise fault from exc
            except BaseException:
                session.rollback()
                raise
            self.write_health.succeeded()
            uow._bookmark = self._commit_position(session)
        finally:
            session.close()
        if self._router is not None:  # without replicas every unit of work is the primary's
            log.debug("unit of work", mode="write", served_by=PRIMARY, bookmark=uow.bookmark)

    @contextmanager
    def read(self, consistency: Consistency = "fresh") -> Iterator[UnitOfWork]:
        """Read-only statements on the node ``consistency`` calls for (see routing.py).

        On SQLite they share one transaction (one snapshot). On the PostgreSQL primary
        each runs as its own read-only transaction (READ COMMITTED gives every statement
        a fresh snapshot either way; see ``create_postgres_engine``).

        Writes through it fail loudly. ``uow.bookmark`` is never earlier than the bookmark
        given, and once the block ends it covers everything the read could have seen.
        """
        requested = self._parse_consistency(consistency)
        if self._router is None:
            route = ReadRoute(served_by=PRIMARY, bind=self._read_bind)
        else:
            route = self._router.route(str(consistency), requested)
        session = self._sessions(bind=route.bind)
        uow = UnitOfWork(
            session=session,
            mode="read",
            served_by=route.served_by,
            consistency=str(consistency),
            _bookmark=requested,
            _route=route,
            _router=self._router,
        )
        session.info[_UOW_KEY] = uow
        try:
            # Leaving the block, session.close() ends the read transaction. (Not rollback():
            # it would expire the objects the caller read, which it may still use.)
            yield uow
            if self._router is not None:  # read after the statements: covers what they saw
                uow._bookmark = self._router.bookmark_after(route, requested)
        except DBAPIError as exc:
            if route.connection is None:
                session.rollback()
            # else route.close() below ends it, and a broken replica link cannot mask exc.
            if is_read_only_violation(exc):
                raise ReadOnlyTransactionError(
                    f"a write was attempted inside db.read() (served by {uow.served_by}, "
                    "which is read-only); writes belong in db.write()"
                ) from exc
            raise
        finally:
            session.close()
            route.close()
            self._log_read(uow, route, requested)

    def _retry_off_failed_replica(self, state: ORMExecuteState) -> Result[Any] | None:
        """Run a statement; if its replica fails under it, run it again on the primary."""
        uow: UnitOfWork | None = state.session.info.get(_UOW_KEY)
        if uow is None or not uow._may_fail_over():
            return None  # the ordinary path
        try:
            return state.invoke_statement()
        except DBAPIError as exc:
            connection = _fail_over(state.session, uow, exc)
        return state.invoke_statement(bind_arguments={"bind": connection})

    def _log_read(self, uow: UnitOfWork, route: ReadRoute, requested: Bookmark | None) -> None:
        consistency = "bookmark" if requested else uow.consistency
        record_read_route(
            ReadRouteEvent(
                served_by=uow.served_by,
                consistency=consistency,
                fallback=route.fallback,
                waited_ms=route.waited_ms,
                failed_over_from=route.failed_over_from,
            )
        )
        if self._router is None:
            return  # the primary, always: nothing worth a log line per read
        log.debug(
            "unit of work",
            mode="read",
            consistency=consistency,
            served_by=uow.served_by,
            bookmark_in=requested.encode() if requested else None,
            bookmark=uow.bookmark,
            waited_ms=route.waited_ms,
            fallback=route.fallback,
            failed_over_from=route.failed_over_from,
        )

    def parse_bookmark(self, token: str) -> Bookmark:
        bookmark = Bookmark.parse(token)
        expected = "pg" if self.backend == "postgresql" else "sqlite"
        if bookmark.kind != expected:
            raise Invalid(
                "the bookmark was issued by a different kind of database; omit it",
                code="invalid_bookmark",
            )
        return bookmark

    def _parse_consistency(self, consistency: Consistency) -> Bookmark | None:
        if consistency in ("fast", "fresh"):
            return None
        return self.parse_bookmark(consistency)

    def _commit_position(self, session: Session) -> Bookmark:
        if self.backend != "postgresql":
            return sqlite_bookmark()
        # Read after COMMIT, so the position covers the commit record. A fresh connection
        # keeps the session's objects loaded (a session rollback would expire them).
        with self.primary.connect() as conn:
            lsn = conn.execute(text("SELECT pg_current_wal_insert_lsn()::text")).scalar_one()
        return Bookmark.from_pg_lsn(lsn)

    @staticmethod
    def merge_bookmarks(a: str | None, b: str | None) -> str | None:
        """The later of two encoded bookmarks (never moves a client's bookmark backwards)."""
        merged = later(Bookmark.parse(a) if a else None, Bookmark.parse(b) if b else None)
        return merged.encode() if merged else None


def run_driver_sql(session: Session, sql: str, params: Any) -> list[Sequence[Any]]:
    """Run compiled SQL on the session's connection and fetch every row (see
    ``stich.db.compiled``), failing over to the primary like an ORM statement would."""
    try:
        return _fetch(session.connection(), sql, params)
    except DBAPIError as exc:
        uow: UnitOfWork | None = session.info.get(_UOW_KEY)
        if uow is None or not uow._may_fail_over():
            raise
        connection = _fail_over(session, uow, exc)
    return _fetch(connection, sql, params)


def _fetch(connection: Connection, sql: str, params: Any) -> list[Sequence[Any]]:
    result = connection.exec_driver_sql(sql, params)
    rows = result.cursor.fetchall() if result.returns_rows else []
    result.close()
    return cast(list[Sequence[Any]], rows)


def _fail_over(session: Session, uow: UnitOfWork, exc: DBAPIError) -> Connection:
    """The unit of work's replica failed a statement: move it to the primary, or re-raise."""
    if not is_replica_failure(exc) or uow._route is None or uow._router is None:
        raise exc
    connection = uow._router.fail_over(uow._route, exc)
    session.bind = connection
    uow.served_by = uow._route.served_by
    return connection


def _sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file, or None for an in-memory database."""
    database = settings.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).resolve()
