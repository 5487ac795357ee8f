"""Monotonic reads: the bookmark a read returns covers everything that read showed.

Real streaming replicas (tests/replica_cluster.py). A client that echoes the last
bookmark must never read behind anything it has already read, even when its reads are
served by different replicas, or by the primary in their place.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import ExitStack

import pytest
from sqlalchemy import func, select, text

from stich.audit.models import AuditLog
from stich.db import Database, UnitOfWork
from stich.db.local_cluster import LocalCluster
from tests.replica_cluster import pause_replay, replayed, wait_until
from tests.test_replicas import position, sees, write_row

pytestmark = pytest.mark.db


def open_read_on(stack: ExitStack, db: Database, replica: str) -> UnitOfWork:
    """A "fast" read unit of work that ``replica`` serves (reads take replicas in turn)."""
    for _ in range(10):
        attempt = ExitStack()
        uow = attempt.enter_context(db.read("fast"))
        if uow.served_by == replica:
            stack.push(attempt.pop_all())
            return uow
        attempt.close()
    raise AssertionError(f"{replica} never served a fast read")


def test_a_replica_read_returns_a_bookmark_covering_data_replayed_while_it_ran(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    write_row(replica_db)
    replica_cluster.wait_until_replayed()
    with ExitStack() as stack:
        uow = open_read_on(stack, replica_db, "replica-1")
        opened_at = uow.session.scalar(text("SELECT pg_last_wal_replay_lsn()::text"))
        high, low = str(opened_at).split("/")
        # replica-2 stops at (or after) where the read opened: it qualifies for any
        # bookmark from then, but never gets the row written next.
        wait_until(
            lambda: replayed(replica_cluster, "replica-2") >= (int(high, 16) << 32 | int(low, 16)),
            what="replica-2 to reach the read's opening position",
        )
        pause_replay(replica_cluster, "replica-2")
        row_id, written = write_row(replica_db)
        wait_until(
            lambda: replayed(replica_cluster, "replica-1") >= position(written),
            what="replica-1 to replay the new row",
        )
        # READ COMMITTED: this statement's snapshot is newer than the read's opening.
        assert uow.session.scalar(select(AuditLog.id).where(AuditLog.id == row_id)) == row_id
    bookmark = uow.bookmark
    assert position(bookmark) >= position(written)  # it covers the row it showed
    assert bookmark is not None
    for _ in range(6):  # replica-2 may never serve it: it is behind the row
        found, served_by, _ = sees(replica_db, bookmark, row_id)
        assert found, f"read behind an earlier read (served by {served_by})"
        assert served_by in {"replica-1", "primary"}


def test_a_read_the_primary_serves_instead_of_a_replica_returns_its_position(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    for name in replica_cluster.replica_names:
        pause_replay(replica_cluster, name)
    first_id, first = write_row(replica_db)
    second_id, second = write_row(replica_db)

    # Replicas behind the bookmark: the primary serves it, and shows the second row.
    found, served_by, bookmark = sees(replica_db, first, second_id)
    assert (found, served_by) == (True, "primary")
    assert position(bookmark) >= position(second)

    # A replica lost mid-read: the rest runs on the primary, which shows the second row.
    with replica_db.read("fast") as uow:
        assert uow.served_by.startswith("replica-")
        assert uow.session.scalar(select(AuditLog.id).where(AuditLog.id == first_id)) is None
        backend_pid = uow.session.scalar(text("SELECT pg_backend_pid()"))
        with replica_cluster.connect(uow.served_by) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        assert uow.session.scalar(select(AuditLog.id).where(AuditLog.id == second_id))
        assert uow.served_by == "primary"
    assert position(uow.bookmark) >= position(second)


def test_a_client_echoing_bookmarks_never_sees_fewer_rows_while_writes_go_on(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    """Rows are only added; one replica applies them late. Reads that echo the last
    bookmark, over both replicas and the primary, must never count fewer rows."""
    replica_cluster.set_replica_setting("replica-2", "recovery_min_apply_delay", "40ms")
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            write_row(replica_db)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    counts: list[int] = []
    served: set[str] = set()
    try:
        bookmark = "fast"
        for _ in range(150):
            with replica_db.read(bookmark) as uow:
                counts.append(uow.session.scalar(select(func.count()).select_from(AuditLog)) or 0)
            served.add(uow.served_by)
            assert uow.bookmark is not None
            bookmark = uow.bookmark
    finally:
        stop.set()
        writer.join()
    went_back = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(counts)) if b < a]
    assert went_back == [], f"reads went backwards (served by {served})"
    assert counts[-1] > counts[0]  # the writes really went on meanwhile
