"""Read routing: opaque read-your-writes bookmarks, and the node that serves each read.

On PostgreSQL a bookmark carries the WAL LSN read after a commit; a read that presents it
must be served by a node that has replayed at least that far. On SQLite there is one file
and every read is fresh, but the same calls accept and return bookmarks, so application
code is identical on both backends.

:class:`ReadRouter` picks the node for one read unit of work (docs/replicas.md):

- ``"fresh"``: the primary.
- ``"fast"``: one usable replica, chosen in turn; it is probed when the unit of work opens
  (one round trip that proves the connection works and reads its replayed position), and
  the next replica, then the primary, is tried if the probe fails.
- a bookmark: a replica whose ``pg_last_wal_replay_lsn()`` has reached it; if none has,
  the probed replicas are polled for up to ``replica_bookmark_wait_ms``, then the primary.

The node is then fixed for the unit of work (sticky), so its reads never go backwards.

A finished read's bookmark must cover everything it showed (:meth:`ReadRouter.bookmark_after`).
At READ COMMITTED every statement on a hot standby takes a new snapshot, which holds what
had been replayed when it was taken, so the position read when the read opened only
bounds it from below (enough to decide a bookmark). The bound from above is read after
the last statement: ``pg_last_wal_replay_lsn()`` only grows, so it covers every earlier
snapshot. A read the primary served instead of a replica (fallback, failover) returns the
primary's WAL insert position, read after its statements the same way.

Every wait on a replica has a time limit (``stich.db.replica_connections``): opening a read
on one replica (connect, ping, probe) takes at most ``replica_answer_timeout_seconds``
before the next node is tried.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass, field
from typing import Literal

import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from stich.db.replica_connections import answer_deadline
from stich.db.replicas import Replica, ReplicaSet, describe_failure, parse_lsn
from stich.errors import Invalid

log = structlog.get_logger("stich.db.routing")

BOOKMARK_VERSION = "1"
BackendKind = Literal["pg", "sqlite"]
_KINDS: dict[str, BackendKind] = {"pg": "pg", "sqlite": "sqlite"}
_MAX_POSITION = (1 << 64) - 1
_MAX_BOOKMARK_LENGTH = 64


@dataclass(frozen=True, order=True)
class Bookmark:
    kind: BackendKind
    position: int

    def encode(self) -> str:
        raw = f"{BOOKMARK_VERSION}:{self.kind}:{self.position:x}".encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def parse(cls, token: str) -> Bookmark:
        """Decode a client-supplied bookmark, or raise Invalid (HTTP 400) saying why."""
        bad = Invalid(
            "the bookmark is not one this server issued; send back the X-Stich-Bookmark "
            "header value unchanged, or omit it",
            code="invalid_bookmark",
        )
        if not token or len(token) > _MAX_BOOKMARK_LENGTH or not token.isascii():
            raise bad
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
            version, kind, position_hex = raw.split(":")
            position = int(position_hex, 16)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise bad from None
        if version != BOOKMARK_VERSION or kind not in _KINDS or not 0 <= position <= _MAX_POSITION:
            raise bad
        return cls(_KINDS[kind], position)

    @classmethod
    def from_pg_lsn(cls, lsn: str) -> Bookmark:
        return cls("pg", parse_lsn(lsn))

    def pg_lsn(self) -> str:
        return f"{self.position >> 32:X}/{self.position & 0xFFFFFFFF:X}"


def sqlite_bookmark() -> Bookmark:
    """SQLite has one copy of the data; the bookmark only needs to be well-formed and
    monotonic, so it carries the commit time in nanoseconds."""
    return Bookmark("sqlite", time.time_ns())


def later(a: Bookmark | None, b: Bookmark | None) -> Bookmark | None:
    """The later of two bookmarks: bookmarks never go backwards (monotonic reads)."""
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


PRIMARY = "primary"
_PROBE_SQL = text("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text")
_REPLAYED_SQL = text("SELECT pg_last_wal_replay_lsn()::text")
_PRIMARY_POSITION_SQL = text("SELECT pg_current_wal_insert_lsn()::text")
_FIRST_POLL_S = 0.002
_MAX_POLL_S = 0.02
_ALL_DOWN_WARNING_EVERY_S = 10.0


@dataclass
class ReadRoute:
    """Where one read unit of work runs and how it got there."""

    served_by: str
    bind: Engine | Connection
    position: int | None = None  # the replica's replayed position when the read opened
    waited_ms: float = 0.0
    fallback: str | None = None  # why the primary serves a read a replica could have
    failed_over_from: str | None = None
    connection: Connection | None = field(default=None, repr=False)  # ours to close
    _retired: list[Connection] = field(default_factory=list, repr=False)

    @property
    def on_replica(self) -> bool:
        return self.served_by != PRIMARY

    def close(self) -> None:
        """End the read transaction(s). A failed rollback loses nothing: it was a read."""
        connections = [*self._retired, *([self.connection] if self.connection else [])]
        self.connection, self._retired = None, []
        for connection in connections:
            _close_quietly(connection)


@dataclass
class _Probe:
    replica: Replica
    connection: Connection
    position: int


class ReadRouter:
    """Chooses the node for each read unit of work on PostgreSQL with replicas."""

    def __init__(self, replicas: ReplicaSet, primary_read: Engine, *, wait_ms: float) -> None:
        self.replicas = replicas
        self.primary_read = primary_read
        self.wait_s = wait_ms / 1000
        self.answer_timeout_s = replicas.answer_timeout
        self._last_all_down_warning = -_ALL_DOWN_WARNING_EVERY_S

    def route(self, consistency: str, bookmark: Bookmark | None) -> ReadRoute:
        if bookmark is not None:
            return self._at_bookmark(bookmark)
        if consistency == "fast":
            return self._any_replica()
        return ReadRoute(served_by=PRIMARY, bind=self.primary_read)

    def fail_over(self, route: ReadRoute, exc: DBAPIError) -> Connection:
        """A statement failed on the route's replica: carry on with the primary.

        The primary is never behind a replica, so the unit of work still reads at or after
        everything it has seen. A lost connection also takes the replica out of rotation;
        a recovery conflict only cancelled this query, so the replica stays.
        """
        replica = self.replicas.by_name(route.served_by)
        reason = describe_failure(exc)
        if exc.connection_invalidated:
            replica.skip(f"connection lost: {reason}")
        log.warning(
            "read failed on a replica; retrying on the primary", replica=replica.name, reason=reason
        )
        if route.connection is not None:
            route._retired.append(route.connection)
        connection = self.primary_read.connect()
        route.connection = connection
        route.bind = connection
        route.failed_over_from = route.served_by
        route.served_by = PRIMARY
        return connection

    def bookmark_after(self, route: ReadRoute, requested: Bookmark | None) -> Bookmark | None:
        """The bookmark of a finished read: never earlier than the one given, and at or
        after everything the read could have seen, so a client that echoes it never
        reads behind it (monotonic reads)."""
        position = self._covering_position(route)
        return later(requested, None if position is None else Bookmark("pg", position))

    def _covering_position(self, route: ReadRoute) -> int | None:
        if route.on_replica:
            position = self._replayed_after(route)
            if position is not None:
                return position
            # The replica failed before saying: the primary is never behind it.
        elif route.fallback is None and route.failed_over_from is None:
            return None  # "fresh" by choice does not advance bookmarks (docs/replicas.md)
        return self._primary_position(route)

    def _replayed_after(self, route: ReadRoute) -> int | None:
        """The replica's replay position now, after the read's last statement."""
        if route.connection is None:
            return None
        replica = self.replicas.by_name(route.served_by)
        try:
            with answer_deadline(self.answer_timeout_s):
                lsn = route.connection.execute(_REPLAYED_SQL).scalar_one()
        except DBAPIError as exc:
            if exc.connection_invalidated:
                replica.skip(f"connection lost: {describe_failure(exc)}")
            return None
        return None if lsn is None else parse_lsn(lsn)

    def _primary_position(self, route: ReadRoute) -> int:
        if route.connection is not None and not route.on_replica:  # failed over: still open
            lsn = route.connection.execute(_PRIMARY_POSITION_SQL).scalar_one()
        else:
            with self.primary_read.connect() as connection:
                lsn = connection.execute(_PRIMARY_POSITION_SQL).scalar_one()
        return parse_lsn(lsn)

    # ----- choosing --------------------------------------------------------------------

    def _any_replica(self) -> ReadRoute:
        for replica in self.replicas.usable():
            probe = self._open(replica)
            if probe is not None:
                return self._on(probe, waited_s=0.0)
        return self._primary_because("no usable replica", waited_s=0.0, all_down=True)

    def _at_bookmark(self, bookmark: Bookmark) -> ReadRoute:
        started = time.monotonic()
        target = bookmark.position
        candidates = self.replicas.usable()
        # Replicas the last check already saw past the bookmark go first; the stable sort
        # keeps the rotation among them.
        candidates.sort(key=lambda replica: (replica.health.position or 0) < target)
        behind: list[_Probe] = []
        for replica in candidates:
            probe = self._open(replica)
            if probe is None:
                continue
            if probe.position >= target:
                _discard(behind)
                return self._on(probe, waited_s=time.monotonic() - started)
            behind.append(probe)
        if not behind:
            return self._primary_because("no usable replica", waited_s=0.0, all_down=True)
        caught_up = self._wait_for(target, behind, deadline=started + self.wait_s)
        waited_s = time.monotonic() - started
        if caught_up is not None:
            return self._on(caught_up, waited_s=waited_s)
        log.info(
            "no replica reached the bookmark in time; reading from the primary",
            waited_ms=round(waited_s * 1000, 2),
        )
        return self._primary_because("replicas behind the bookmark", waited_s=waited_s)

    def _wait_for(self, target: int, behind: list[_Probe], *, deadline: float) -> _Probe | None:
        """Poll the probed replicas until one replays ``target`` or the budget runs out."""
        pause = _FIRST_POLL_S
        try:
            while behind and (remaining := deadline - time.monotonic()) > 0:
                time.sleep(min(pause, remaining))
                pause = min(pause * 2, _MAX_POLL_S)
                for probe in list(behind):
                    position = self._replayed(probe.replica, probe.connection)
                    if position is None:
                        behind.remove(probe)
                        _close_quietly(probe.connection)
                        continue
                    probe.position = position
                    if position >= target:
                        behind.remove(probe)
                        return probe
            return None
        finally:
            _discard(behind)

    def _open(self, replica: Replica) -> _Probe | None:
        """A read-only transaction on ``replica`` that is proven to work, or None.

        Connecting, pinging a pooled connection and probing share one deadline, so a
        replica that stopped answering costs a read at most the answer timeout."""
        with answer_deadline(self.answer_timeout_s):
            try:
                connection = replica.read_engine.connect()
            except DBAPIError as exc:
                replica.skip(f"unreachable: {describe_failure(exc)}")
                return None
            position = self._replayed(replica, connection)
        if position is None:
            _close_quietly(connection)
            return None
        return _Probe(replica, connection, position)

    @staticmethod
    def _replayed(replica: Replica, connection: Connection) -> int | None:
        try:
            in_recovery, lsn = connection.execute(_PROBE_SQL).one()
        except DBAPIError as exc:
            replica.skip(f"probe failed: {describe_failure(exc)}")
            return None
        if not in_recovery or lsn is None:
            replica.skip("not in recovery (promoted, or not a replica)")
            return None
        return parse_lsn(lsn)

    @staticmethod
    def _on(probe: _Probe, *, waited_s: float) -> ReadRoute:
        return ReadRoute(
            served_by=probe.replica.name,
            bind=probe.connection,
            position=probe.position,
            waited_ms=round(waited_s * 1000, 2),
            connection=probe.connection,
        )

    def _primary_because(
        self, reason: str, *, waited_s: float, all_down: bool = False
    ) -> ReadRoute:
        if all_down:
            self._warn_all_down()
        return ReadRoute(
            served_by=PRIMARY,
            bind=self.primary_read,
            waited_ms=round(waited_s * 1000, 2),
            fallback=reason,
        )

    def _warn_all_down(self) -> None:
        # Every read in an outage would say the same; once every few seconds is enough.
        now = time.monotonic()
        if now - self._last_all_down_warning >= _ALL_DOWN_WARNING_EVERY_S:
            self._last_all_down_warning = now
            log.warning(
                "no read replica is usable; reading from the primary",
                replicas={r.name: r.health.reason for r in self.replicas.replicas},
            )


def _discard(probes: list[_Probe]) -> None:
    for probe in probes:
        _close_quietly(probe.connection)
    probes.clear()


def _close_quietly(connection: Connection) -> None:
    try:
        connection.rollback()
    except DBAPIError:
        pass  # a read has nothing to keep; the pool drops a broken connection
    finally:
        connection.close()
