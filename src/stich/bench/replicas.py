"""``stich bench --replicas``: feed read throughput with 0, 1 and 2 streaming replicas,
and what a read at a bookmark costs.

Everything runs on one machine: a scratch primary and two replicas
(:class:`~stich.db.local_cluster.LocalCluster`, ``fsync = off``) share its cores with
the client threads. On a small machine this shows the routing overhead and the cost of
a bookmark check, not the capacity that replicas on their own hosts would add.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stich.bench.runner import Budget, Measurement, measure
from stich.bench.workloads import gallery
from stich.config import Settings, load_settings
from stich.db import Database
from stich.db.local_cluster import ClusterError, LocalCluster, find_pg_bin, free_ports
from stich.gallery.feed import FeedPeriod, FeedRequest, FeedSort

REPLICAS = 2


@dataclass(frozen=True)
class Throughput:
    replicas: int
    clients: int
    reads: int
    seconds: float
    reads_per_second: float
    served_by: dict[str, int]


def start_cluster(directory: Path, on_step: Callable[[str], None]) -> LocalCluster:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise ClusterError(
            "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found; "
            "install the PostgreSQL server or set STICH_PG_BIN"
        )
    cluster = LocalCluster(
        directory=directory, ports=free_ports(REPLICAS + 1), bin_dir=bin_dir, on_step=on_step
    )
    cluster.up()
    return cluster


def replica_settings(base: Settings, cluster: LocalCluster, replicas: int) -> Settings:
    return load_settings(
        database_url=cluster.primary_url,
        read_replica_urls=cluster.replica_urls[:replicas],
        slow_query_ms=base.slow_query_ms,
        server_key=base.server_key.get_secret_value() if base.server_key else None,
        server_key_file=base.server_key_file,
    )


FEEDS = [
    FeedRequest(sort=FeedSort.RECENT),
    FeedRequest(sort=FeedSort.POPULAR),
    FeedRequest(sort=FeedSort.TRENDING, period=FeedPeriod.WEEK),
]


def feed_throughput(db: Database, replicas: int, clients: int, seconds: float) -> Throughput:
    """``clients`` threads reading feed first pages ("fast") for ``seconds``."""
    lock = threading.Lock()
    reads = 0
    served_by: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    def loop(offset: int) -> None:
        nonlocal reads
        n = offset
        while time.monotonic() < deadline:
            with db.read("fast") as uow:
                gallery(uow.session, db.settings).feed(FEEDS[n % len(FEEDS)], None)
            n += 1
            with lock:
                reads += 1
                served_by[uow.served_by] = served_by.get(uow.served_by, 0) + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return Throughput(replicas, clients, reads, elapsed, reads / elapsed, dict(served_by))


def bookmark_costs(db: Database, budget: Budget) -> list[Measurement]:
    """One feed page read fresh (primary), fast (a replica: one probe round trip) and at a
    bookmark the replica has reached (the probe also decides the bookmark)."""
    request = FEEDS[0]
    with db.write() as uow:
        uow.session.connection()  # an empty write still yields a commit position
    bookmark = uow.bookmark
    assert bookmark is not None

    def read(consistency: str) -> Callable[[], object]:
        def run() -> object:
            with db.read(consistency) as uow:
                return gallery(uow.session, db.settings).feed(request, None)

        return run

    time.sleep(0.5)  # let the replicas replay past the bookmark
    return [
        measure("replicas/feed fresh (primary)", read("fresh"), budget=budget),
        measure("replicas/feed fast (replica probe)", read("fast"), budget=budget),
        measure("replicas/feed at bookmark (replica)", read(bookmark), budget=budget),
    ]
