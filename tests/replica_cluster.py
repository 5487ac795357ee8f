"""A real PostgreSQL primary with two streaming replicas, for the replica tests.

``replica_cluster`` (session-scoped) starts the nodes through the same code as
``stich dev replicas up`` (``stich.db.local_cluster``) on ports the kernel says are free,
in a scratch directory under /tmp (the ``postgres`` OS user, which runs the servers when
the tests run as root, cannot reach pytest's private temporary directories), migrates the
``stich`` database on the primary, and stops and deletes everything afterwards.

Without the server binaries the tests skip with the reason; under CI=true they fail.
tests/conftest.py registers this module as a plugin, so its fixtures (``pg_bin``,
``replica_cluster``, ``replica_db``) are available to every test module. Helpers act on
the nodes: pause and resume replay, read replay positions, and freeze a node
(:class:`Frozen`: SIGSTOP, so it accepts connections but never answers).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import psycopg
import pytest

from stich.config import Settings
from stich.db import Database, migrate
from stich.db.local_cluster import ClusterError, LocalCluster, find_pg_bin, free_ports
from stich.models import metadata
from tests.conftest import IN_CI, make_settings

REPLICAS = 2
_START_ATTEMPTS = 3  # free ports can be taken between asking and binding (xdist workers)


def _unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"replica tests need PostgreSQL server binaries under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_bin() -> Path:
    """The PostgreSQL server binaries, or a skip (a failure under CI) saying what is missing."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        _unavailable(
            "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found in "
            "/usr/lib/postgresql/*/bin or on PATH; set STICH_PG_BIN"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root without a 'postgres' OS user to run the servers")
    return bin_dir


@pytest.fixture(scope="session")
def replica_cluster(pg_bin: Path) -> Iterator[LocalCluster]:
    cluster = _start(pg_bin)
    try:
        migrate.upgrade(cluster.primary_url)
        cluster.wait_until_replayed()
        yield cluster
    finally:
        cluster.down(purge=True)


def _start(bin_dir: Path) -> LocalCluster:
    for attempt in range(_START_ATTEMPTS):
        directory = Path(tempfile.mkdtemp(prefix="stich-replica-test-", dir="/tmp"))
        cluster = LocalCluster(directory=directory, ports=free_ports(REPLICAS + 1), bin_dir=bin_dir)
        try:
            cluster.up()
        except ClusterError:
            cluster.down(purge=True)
            shutil.rmtree(directory, ignore_errors=True)
            if attempt == _START_ATTEMPTS - 1:
                raise
            continue
        return cluster
    raise AssertionError("unreachable")


def replica_settings(cluster: LocalCluster, tmp_path: Path, **overrides: object) -> Settings:
    """Settings for the cluster, with a quick health check so tests do not wait long."""
    values: dict[str, object] = {
        "read_replica_urls": cluster.replica_urls,
        "replica_check_interval_seconds": 0.1,
        "replica_bookmark_wait_ms": 100,
    }
    values.update(overrides)
    return make_settings(cluster.primary_url, tmp_path, **values)


@pytest.fixture
def replica_db(replica_cluster: LocalCluster, tmp_path: Path) -> Iterator[Database]:
    """A Database on the cluster; afterwards every node is back to normal and tables empty."""
    database = Database(replica_settings(replica_cluster, tmp_path))
    try:
        yield database
    finally:
        database.dispose()
        restore(replica_cluster)


def restore(cluster: LocalCluster) -> None:
    """Undo what a test may have done to the cluster, and empty the tables."""
    for name in cluster.replica_names:
        if not cluster.is_running(name):
            cluster.start_node(name)
        with cluster.connect(name) as conn:
            conn.execute("ALTER SYSTEM RESET recovery_min_apply_delay")
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("SELECT pg_wal_replay_resume()")
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with cluster.connect("primary", cluster.database) as conn:
        conn.execute(f"TRUNCATE TABLE {tables} RESTART IDENTITY CASCADE")
    cluster.wait_until_streaming()
    cluster.wait_until_replayed()


def pause_replay(cluster: LocalCluster, name: str) -> None:
    with cluster.connect(name) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        wait_until(
            lambda: _fetch(conn, "SELECT pg_get_wal_replay_pause_state()") == "paused",
            what=f"{name} to pause replay",
        )


def resume_replay(cluster: LocalCluster, name: str) -> None:
    with cluster.connect(name) as conn:
        conn.execute("SELECT pg_wal_replay_resume()")


def replayed(cluster: LocalCluster, name: str) -> int:
    """The replica's replayed WAL position, as an integer."""
    with cluster.connect(name) as conn:
        lsn = _fetch(conn, "SELECT pg_last_wal_replay_lsn()::text")
    high, low = str(lsn).split("/")
    return (int(high, 16) << 32) | int(low, 16)


def wait_until(condition: Callable[[], bool], *, what: str, timeout_s: float = 30.0) -> None:
    """Poll ``condition`` until true; a test waits for a state, it never asserts a time."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.02)


def _fetch(conn: psycopg.Connection[tuple[object, ...]], sql: str) -> object:
    row = conn.execute(sql).fetchone()
    return None if row is None else row[0]


class Frozen:
    """SIGSTOP every process of a node (its postmaster, then the children it had) until
    the block ends: the node still accepts TCP connections but never answers.

    A watchdog thaws it after ``safety_s`` so a test that hangs on it cannot hang for
    ever; ``still_frozen`` says whether everything in the block ran while it was frozen.
    """

    def __init__(self, cluster: LocalCluster, node: str, *, safety_s: float = 60.0) -> None:
        self.cluster, self.node = cluster, node
        self.pids: list[int] = []
        self._watchdog = threading.Timer(safety_s, self._thaw)
        self._thawed = threading.Event()

    def __enter__(self) -> Frozen:
        postmaster = int(
            (self.cluster.directory / self.node / "postmaster.pid").read_text().split()[0]
        )
        os.kill(postmaster, signal.SIGSTOP)  # first, so it forks no new child meanwhile
        self.pids = [postmaster, *_children(postmaster)]
        for pid in self.pids[1:]:
            os.kill(pid, signal.SIGSTOP)
        self._watchdog.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._watchdog.cancel()
        self._thaw()

    @property
    def still_frozen(self) -> bool:
        return not self._thawed.is_set()

    def _thaw(self) -> None:
        self._thawed.set()
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def _children(parent: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended while we looked
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children
