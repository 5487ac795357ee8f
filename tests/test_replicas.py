"""Read replicas on real streaming replication: routing, bookmarks, health and fallback.

Every test runs against a primary and two streaming replicas started by the harness
(tests/replica_cluster.py); nothing is mocked. Tests wait for states (replay paused, a
replica caught up or healthy again) with a generous limit; none asserts a duration.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import structlog
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import DBAPIError

from stich.audit.models import ActorType, AuditLog
from stich.db import Database
from stich.db.errors import ReadOnlyTransactionError
from stich.db.local_cluster import LocalCluster
from stich.db.replicas import Replica
from stich.db.routing import Bookmark
from stich.gallery.feed import FeedRequest
from stich.gallery.service import GalleryService
from tests.replica_cluster import (
    pause_replay,
    replayed,
    replica_settings,
    resume_replay,
    wait_until,
)

pytestmark = pytest.mark.db


def write_row(db: Database) -> tuple[str, str]:
    """Commit one audit row; return its id and the write's bookmark."""
    with db.write() as uow:
        entry = AuditLog(actor_type=ActorType.SYSTEM, action="test.replica")
        uow.session.add(entry)
        uow.session.flush()
        row_id = entry.id
    assert uow.bookmark is not None
    return row_id, uow.bookmark


def sees(db: Database, consistency: str, row_id: str) -> tuple[bool, str, str | None]:
    """Does a read with ``consistency`` see the row? Also: who served it, its bookmark."""
    with db.read(consistency) as uow:
        found = uow.session.scalar(select(AuditLog.id).where(AuditLog.id == row_id))
    return found is not None, uow.served_by, uow.bookmark


def position(bookmark: str | None) -> int:
    assert bookmark is not None
    return Bookmark.parse(bookmark).position


def test_replay_paused_bookmark_reads_never_miss_the_write(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    for name in replica_cluster.replica_names:
        pause_replay(replica_cluster, name)
    row_id, bookmark = write_row(replica_db)

    # No replica can reach the bookmark: after the wait budget the primary serves it.
    found, served_by, read_bookmark = sees(replica_db, bookmark, row_id)
    assert found
    assert served_by == "primary"
    assert position(read_bookmark) >= position(bookmark)  # monotonic

    # Without the bookmark a "fast" read is served by a paused replica: stale.
    found, served_by, _ = sees(replica_db, "fast", row_id)
    assert served_by.startswith("replica-")
    assert not found

    # "fresh" always reads the primary.
    assert sees(replica_db, "fresh", row_id)[:2] == (True, "primary")

    for name in replica_cluster.replica_names:
        resume_replay(replica_cluster, name)
    target = position(bookmark)
    wait_until(
        lambda: all(replayed(replica_cluster, n) >= target for n in replica_cluster.replica_names),
        what="both replicas to replay past the write",
    )
    # Replicas the health check last saw past a bookmark are tried first; until it has
    # seen both, a burst of reads may all go to one of them (correct, but not spread).
    assert replica_db.replicas is not None
    replicas = replica_db.replicas.replicas
    wait_until(
        lambda: all((replica.health.position or 0) >= target for replica in replicas),
        what="the health check to see both replicas past the write",
    )
    served = set()
    for _ in range(4):
        found, served_by, read_bookmark = sees(replica_db, bookmark, row_id)
        assert found
        assert position(read_bookmark) >= position(bookmark)
        served.add(served_by)
    assert served == {"replica-1", "replica-2"}


def test_bookmarked_reads_wait_for_a_replica_to_catch_up(
    replica_cluster: LocalCluster, tmp_path: Path, replica_db: Database
) -> None:
    """A replica that resumes within the wait budget serves the read (no primary)."""
    db = Database(replica_settings(replica_cluster, tmp_path, replica_bookmark_wait_ms=10_000))
    try:
        for name in replica_cluster.replica_names:
            pause_replay(replica_cluster, name)
        row_id, bookmark = write_row(db)
        timer = threading.Timer(0.3, resume_replay, args=(replica_cluster, "replica-2"))
        timer.start()
        try:
            found, served_by, _ = sees(db, bookmark, row_id)
        finally:
            timer.join()
        assert found
        assert served_by == "replica-2"
    finally:
        db.dispose()


def test_a_unit_of_work_sticks_to_one_replica_and_reads_spread(replica_db: Database) -> None:
    ports = []
    served = set()
    for _ in range(4):
        with replica_db.read("fast") as uow:
            seen = {uow.session.scalar(text("SELECT inet_server_port()")) for _ in range(5)}
            seen.add(uow.session.scalar(select(func.inet_server_port())))
        assert len(seen) == 1  # sticky within the unit of work
        ports.append(seen.pop())
        served.add(uow.served_by)
    assert served == {"replica-1", "replica-2"}
    assert len(set(ports)) == 2
    bookmark = uow.bookmark  # a "fast" read returns the position it read at
    assert bookmark is not None and Bookmark.parse(bookmark).kind == "pg"


def test_a_stopped_replica_is_skipped_without_errors_and_used_after_restart(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    errors: list[BaseException] = []
    served: list[str] = []
    stop = threading.Event()
    row_id, bookmark = write_row(replica_db)

    def read_continuously() -> None:
        while not stop.is_set():
            for consistency in ("fast", bookmark):
                try:
                    with replica_db.read(consistency) as uow:
                        # A query that takes a moment, so a stop can land in the middle.
                        uow.session.execute(text("SELECT pg_sleep(0.005)"))
                        assert uow.session.scalar(select(AuditLog.id).where(AuditLog.id == row_id))
                    served.append(uow.served_by)
                except BaseException as exc:  # every failure counts
                    errors.append(exc)

    reader = threading.Thread(target=read_continuously)
    reader.start()
    try:
        wait_until(lambda: "replica-1" in served, what="replica-1 to serve a read")
        replica_cluster.stop_node("replica-1", mode="immediate")
        down = replica_db.replicas.by_name("replica-1") if replica_db.replicas else None
        assert down is not None
        wait_until(lambda: not down.health.usable, what="replica-1 to be skipped")
        reads_while_down = len(served)
        wait_until(lambda: len(served) > reads_while_down + 20, what="reads while it is down")
        replica_cluster.start_node("replica-1")
        wait_until(lambda: down.health.usable, what="replica-1 to be usable again")
        restarted_at = len(served)
        wait_until(lambda: "replica-1" in served[restarted_at:], what="replica-1 used again")
    finally:
        stop.set()
        reader.join()
    assert errors == []
    assert "primary" in served or "replica-2" in served


def test_a_replica_lost_mid_unit_of_work_fails_over_to_the_primary(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    row_id, bookmark = write_row(replica_db)
    with replica_db.read(bookmark) as uow:
        assert uow.served_by.startswith("replica-")
        replica = uow.served_by
        backend_pid = uow.session.scalar(text("SELECT pg_backend_pid()"))
        with replica_cluster.connect(replica) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        # The next statement finds its connection gone and reruns on the primary.
        assert uow.session.scalar(select(AuditLog.id).where(AuditLog.id == row_id)) == row_id
        assert uow.served_by == "primary"
    assert position(uow.bookmark) >= position(bookmark)


def test_compiled_feed_statements_fail_over_to_the_primary_too(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    # The feed runs precompiled SQL on the connection (stich.db.compiled), outside the
    # ORM's execute hook; a replica lost under it must fail over the same way.
    _, bookmark = write_row(replica_db)
    with replica_db.read("fresh") as uow:
        expected = GalleryService(uow.session).feed(FeedRequest(), None)
    with replica_db.read(bookmark) as uow:
        assert uow.served_by.startswith("replica-")
        backend_pid = uow.session.scalar(text("SELECT pg_backend_pid()"))
        with replica_cluster.connect(uow.served_by) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        page = GalleryService(uow.session).feed(FeedRequest(), None)
        assert uow.served_by == "primary"
    assert (page.total, page.items) == (expected.total, expected.items)


def test_all_replicas_down_reads_go_to_the_primary_with_a_warning(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    row_id, bookmark = write_row(replica_db)
    for name in replica_cluster.replica_names:
        replica_cluster.stop_node(name)
    with structlog.testing.capture_logs() as logs:
        for consistency in ("fast", bookmark, "fast"):
            found, served_by, _ = sees(replica_db, consistency, row_id)
            assert (found, served_by) == (True, "primary")
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert any("no read replica is usable" in e["event"] for e in warnings)


def test_a_replica_lagging_beyond_both_limits_is_skipped(
    replica_cluster: LocalCluster, tmp_path: Path, replica_db: Database
) -> None:
    tight = Database(
        replica_settings(
            replica_cluster, tmp_path, replica_max_lag_seconds=0.001, replica_max_lag_bytes=0
        )
    )
    # Same time limit, but the default 8 MiB byte limit: time alone is not enough.
    bytes_too = Database(replica_settings(replica_cluster, tmp_path, replica_max_lag_seconds=0.001))
    try:
        assert tight.replicas is not None and bytes_too.replicas is not None
        pause_replay(replica_cluster, "replica-1")
        write_row(tight)

        def lagging() -> bool:
            assert tight.replicas is not None
            tight.replicas.check_now()
            return not tight.replicas.by_name("replica-1").health.usable

        wait_until(lagging, what="replica-1 to be seen lagging")
        assert tight.replicas.by_name("replica-1").health.reason == "lagging beyond both limits"
        assert {sees(tight, "fast", "-")[1] for _ in range(4)} == {"replica-2"}

        bytes_too.replicas.check_now()
        assert bytes_too.replicas.by_name("replica-1").health.usable

        resume_replay(replica_cluster, "replica-1")
        wait_until(lambda: not lagging(), what="replica-1 to catch up")
    finally:
        tight.dispose()
        bytes_too.dispose()


def test_writes_through_a_replica_fail_clearly(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    clearly = r"served by replica-\d, which is read-only\); writes belong in db\.write\(\)"
    with pytest.raises(ReadOnlyTransactionError, match=clearly), replica_db.read("fast") as uow:
        uow.session.execute(insert(AuditLog).values(actor_type="system", action="x", id="1"))
    # An ORM flush fails the same way.
    with pytest.raises(ReadOnlyTransactionError, match=clearly), replica_db.read("fast") as uow:
        uow.session.add(AuditLog(actor_type=ActorType.SYSTEM, action="test.replica"))
        uow.session.flush()
    # A replica engine's connections are read-only by themselves, even if its URL points
    # at the primary by mistake (the health check would also refuse that node).
    misconfigured = Replica("replica-x", replica_cluster.primary_url, replica_db.settings)
    try:
        with misconfigured.engine.connect() as conn, pytest.raises(DBAPIError) as caught:
            conn.execute(insert(AuditLog).values(actor_type="system", action="x", id="1"))
        assert getattr(caught.value.orig, "sqlstate", None) == "25006"  # read-only transaction
    finally:
        misconfigured.engine.dispose()


def test_the_health_thread_starts_on_first_use_and_stops_on_dispose(
    replica_cluster: LocalCluster, tmp_path: Path
) -> None:
    db = Database(replica_settings(replica_cluster, tmp_path))
    assert db.replicas is not None
    assert not db.replicas.running  # nothing started by merely building it
    with db.read("fresh"):
        pass
    assert not db.replicas.running  # "fresh" never needs replicas
    with db.read("fast"):
        pass
    assert db.replicas.running
    db.dispose()
    assert not db.replicas.running
    assert not any(t.name == "stich-replica-health" and t.is_alive() for t in threading.enumerate())
