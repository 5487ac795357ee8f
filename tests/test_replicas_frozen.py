"""A replica that stops answering (SIGSTOP: it accepts TCP, never replies) must not stall
reads: they move to another node, and the health check takes it out of rotation.

Real streaming replicas (tests/replica_cluster.py). No timed assertions: each test
checks that every read completed *while the replica was still frozen* (a watchdog thaws
it after a generous minute, so a read that waited on it would finish only after that)
and was served by another node.
"""

from __future__ import annotations

import threading
from contextlib import ExitStack

import pytest
from sqlalchemy import select

from stich.audit.models import AuditLog
from stich.db import Database
from stich.db.local_cluster import LocalCluster
from tests.replica_cluster import Frozen, wait_until
from tests.test_replicas import sees, write_row
from tests.test_replicas_monotonic import open_read_on

pytestmark = pytest.mark.db


def test_reads_go_around_a_frozen_replica(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    row_id, bookmark = write_row(replica_db)
    replica_cluster.wait_until_replayed()
    # Both replicas serve reads first, so each pool holds a connection to reuse.
    assert {sees(replica_db, "fast", row_id)[1] for _ in range(4)} == {"replica-1", "replica-2"}
    assert replica_db.replicas is not None
    frozen_replica = replica_db.replicas.by_name("replica-1")

    with Frozen(replica_cluster, "replica-1") as frozen:
        results = [sees(replica_db, consistency, row_id) for consistency in ["fast", bookmark] * 4]
        assert frozen.still_frozen, "a read waited for the frozen replica"
        wait_until(lambda: not frozen_replica.health.usable, what="replica-1 to be skipped")

    assert all(found for found, _, _ in results)
    assert {served_by for _, served_by, _ in results} <= {"replica-2", "primary"}
    wait_until(lambda: frozen_replica.health.usable, what="the health check to see it answer")


def test_a_replica_frozen_mid_read_hands_the_statement_to_the_primary(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    row_id, _ = write_row(replica_db)
    replica_cluster.wait_until_replayed()
    with ExitStack() as stack:
        uow = open_read_on(stack, replica_db, "replica-1")
        with Frozen(replica_cluster, "replica-1") as frozen:
            found = uow.session.scalar(select(AuditLog.id).where(AuditLog.id == row_id))
            assert frozen.still_frozen, "the statement waited for the frozen replica"
            stack.close()  # ends the read (and its bookmark read) while still frozen
            assert frozen.still_frozen
    assert found == row_id
    assert uow.served_by == "primary"
    assert uow.bookmark is not None


def test_the_health_check_notices_a_replica_that_stopped_answering(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    assert replica_db.replicas is not None
    replica_db.replicas.check_now()
    checked = replica_db.replicas.by_name("replica-2")
    assert checked.health.usable
    with Frozen(replica_cluster, "replica-2") as frozen:
        replica_db.replicas.check_now()  # through the connection the first check pooled
        assert frozen.still_frozen, "the check waited for the frozen replica"
        assert not checked.health.usable
        assert "ReplicaNotAnswering" in (checked.health.reason or "")
        replica_db.replicas.check_now()  # and through a new one
        assert frozen.still_frozen
        assert not checked.health.usable
    replica_db.replicas.check_now()
    assert checked.health.usable


def test_concurrent_reads_are_not_held_by_a_replica_that_freezes_under_them(
    replica_db: Database, replica_cluster: LocalCluster
) -> None:
    row_id, bookmark = write_row(replica_db)
    replica_cluster.wait_until_replayed()
    with ExitStack() as stack:  # replica-1's pool holds a connection for each reader
        for _ in range(3):
            open_read_on(stack, replica_db, "replica-1")
    stop = threading.Event()
    frozen_now = threading.Event()
    errors: list[BaseException] = []
    # Per reader: who served each read that began while replica-1 was frozen.
    after_freeze: list[list[str]] = [[] for _ in range(3)]

    def read_continuously(served: list[str]) -> None:
        while not stop.is_set():
            began_frozen = frozen_now.is_set()
            for consistency in ("fast", bookmark):
                try:
                    found, served_by, _ = sees(replica_db, consistency, row_id)
                    assert found
                except BaseException as exc:  # every failure counts
                    errors.append(exc)
                    continue
                if began_frozen:
                    served.append(served_by)

    readers = [threading.Thread(target=read_continuously, args=(s,)) for s in after_freeze]
    for reader in readers:
        reader.start()
    try:
        with Frozen(replica_cluster, "replica-1") as frozen:
            frozen_now.set()
            # Every reader goes on reading: none is held by a read on replica-1.
            wait_until(
                lambda: all(len(served) >= 20 for served in after_freeze),
                what="every reader to read on while replica-1 is frozen",
            )
            assert frozen.still_frozen, "reads waited for the frozen replica"
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert errors == []
    assert all("replica-1" not in served for served in after_freeze)
