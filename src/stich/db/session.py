"""The unit of work: ``db.write()`` and ``db.read(consistency)``.

A write unit of work runs on the primary in one transaction and commits once, on leaving
the ``with`` block; the commit yields a bookmark. A read unit of work runs in a read-only
transaction whose node is chosen by its consistency: ``"fast"`` (any healthy node),
``"fresh"`` (the primary) or a bookmark string (a node that has caught up to it).

    with db.write() as uow:
        AppService(uow.session).create(...)
    uow.bookmark  # -> "MTpwZzowLzE2QjM3NEQ0OA"

    with db.read(uow.bookmark) as uow:
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from stich.config import Settings
from stich.db.engine import SQLITE_BEGIN_OPTION, create_postgres_engine, create_sqlite_engine
from stich.db.errors import (
    ReadOnlyTransactionError,
    is_read_only_violation,
    translate_integrity_error,
)
from stich.db.instrumentation import instrument_engine
from stich.db.routing import Bookmark, later, sqlite_bookmark
from stich.errors import Invalid

Consistency = Literal["fast", "fresh"] | str
Mode = Literal["write", "read"]


@dataclass
class UnitOfWork:
    """One transaction: its session, which node served it and the bookmark it yields."""

    session: Session
    mode: Mode
    served_by: str = "primary"
    consistency: str = "fresh"
    _bookmark: Bookmark | None = field(default=None, repr=False)

    @property
    def bookmark(self) -> str | None:
        """For a write, the position of its commit; for a read, the position it read at."""
        return self._bookmark.encode() if self._bookmark else None

    @property
    def committed(self) -> bool:
        return self.mode == "write" and self._bookmark is not None


class Database:
    """Engines for one deployment, and the units of work that use them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.backend = settings.backend
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
        else:
            self.primary = create_postgres_engine(settings.url, pool_size=settings.pool_size)
            self._sqlite_reader = None
            self._write_bind = self.primary
            self._read_bind = self.primary.execution_options(postgresql_readonly=True)
        instrument_engine(self.primary, name="primary", slow_query_ms=settings.slow_query_ms)
        self._sessions = sessionmaker(expire_on_commit=False, autoflush=True)

    @property
    def engines(self) -> list[Engine]:
        engines = [self.primary]
        if self._sqlite_reader is not None:
            engines.append(self._sqlite_reader)
        return engines

    def dispose(self) -> None:
        for engine in self.engines:
            engine.dispose()

    @contextmanager
    def write(self) -> Iterator[UnitOfWork]:
        """A read-write transaction on the primary, committed when the block ends cleanly.

        Integrity errors (from a flush inside the block or from the commit) leave as
        Conflict / NotFound / Invalid; any exception rolls everything back.
        """
        session = self._sessions(bind=self._write_bind)
        uow = UnitOfWork(session=session, mode="write")
        try:
            try:
                yield uow
                session.commit()
            except (IntegrityError, DataError) as exc:
                session.rollback()
                raise translate_integrity_error(exc) from exc
            except BaseException:
                session.rollback()
                raise
            uow._bookmark = self._commit_position(session)
        finally:
            session.close()

    @contextmanager
    def read(self, consistency: Consistency = "fresh") -> Iterator[UnitOfWork]:
        """A read-only transaction. Writes through it fail loudly."""
        requested = self._parse_consistency(consistency)
        session = self._sessions(bind=self._read_bind)
        uow = UnitOfWork(session=session, mode="read", consistency=str(consistency))
        uow._bookmark = requested
        try:
            yield uow
            session.rollback()  # nothing to keep; ends the read transaction promptly
        except DBAPIError as exc:
            session.rollback()
            if is_read_only_violation(exc):
                raise ReadOnlyTransactionError(
                    "a write was attempted inside db.read(); writes belong in db.write()"
                ) from exc
            raise
        finally:
            session.close()

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
