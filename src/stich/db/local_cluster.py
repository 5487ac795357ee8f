"""A throwaway PostgreSQL primary with streaming replicas on loopback, for one machine.

``stich dev replicas up`` and the replica tests both use :class:`LocalCluster`: it runs the
server binaries (``initdb``, ``pg_ctl``, ``pg_basebackup -R``) in a scratch directory, one
data directory per node, TCP on 127.0.0.1 only. PostgreSQL refuses to run as root, so when
we are root every binary runs as the ``postgres`` OS user (``runuser -u postgres --``) and
the scratch directory belongs to that user.

The nodes are tuned for a scratch cluster (``fsync = off``, small shared buffers): fine
for trying scale-out and for tests, not for data you want to keep.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from stich.errors import StichError

STATE_FILE = "cluster.json"
DEFAULT_DATABASE = "stich"
DEFAULT_BASE_PORT = 55432
POSTGRES_OS_USER = "postgres"
_READY_TIMEOUT_S = 60.0
_SERVER_SETTINGS = """
# --- written by stich (scratch cluster: fast, not durable) ---
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
cluster_name = '{name}'
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
hot_standby = on
hot_standby_feedback = on
fsync = off
shared_buffers = 32MB
max_connections = 100
"""


class ClusterError(StichError):
    default_code = "local_cluster_error"


def find_pg_bin(explicit: str | Path | None = None) -> Path | None:
    """The directory holding ``initdb``/``pg_ctl``/``pg_basebackup``, or None.

    Looks at ``explicit``, then ``STICH_PG_BIN``, then the newest
    ``/usr/lib/postgresql/<version>/bin``, then ``initdb`` on the PATH.
    """
    candidates: list[Path] = []
    for given in (explicit, os.environ.get("STICH_PG_BIN")):
        if given:
            candidates.append(Path(given))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(versions)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "pg_basebackup")):
            return candidate
    return None


def default_directory() -> Path:
    """A scratch directory every OS user can reach (postgres must traverse its parents)."""
    return Path("/tmp") / f"stich-replicas-{os.getuid()}"  # noqa: S108 - scratch cluster


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free right now (asked of the kernel)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class NodeReport:
    name: str
    port: int
    running: bool
    role: str | None = None  # "primary" / "replica"
    position: str | None = None  # current (primary) or replayed (replica) WAL LSN
    replay_paused: bool | None = None
    lag_bytes: int | None = None


@dataclass
class LocalCluster:
    """One primary (``ports[0]``) and ``len(ports) - 1`` replicas in ``directory``."""

    directory: Path
    ports: list[int]
    bin_dir: Path
    database: str = DEFAULT_DATABASE
    on_step: Callable[[str], None] | None = None

    # ----- addresses -------------------------------------------------------------------

    @property
    def node_names(self) -> list[str]:
        return ["primary"] + [f"replica-{i}" for i in range(1, len(self.ports))]

    @property
    def replica_names(self) -> list[str]:
        return self.node_names[1:]

    def port_of(self, node: str) -> int:
        return self.ports[self.node_names.index(node)]

    def url(self, node: str = "primary", database: str | None = None) -> str:
        """SQLAlchemy URL of ``node`` (psycopg 3 driver)."""
        return (
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port_of(node)}/"
            f"{database or self.database}"
        )

    @property
    def primary_url(self) -> str:
        return self.url("primary")

    @property
    def replica_urls(self) -> list[str]:
        return [self.url(name) for name in self.replica_names]

    def connect(self, node: str = "primary", database: str = "postgres") -> psycopg.Connection:
        """An autocommit libpq connection to ``node`` (for administration and tests)."""
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port_of(node),
            user="postgres",
            dbname=database,
            autocommit=True,
            connect_timeout=5,
        )

    # ----- lifecycle -------------------------------------------------------------------

    @classmethod
    def load(cls, directory: Path, bin_dir: Path | None = None) -> LocalCluster | None:
        """The cluster recorded in ``directory``, or None if there is none."""
        state_path = directory / STATE_FILE
        if not state_path.is_file():
            return None
        state = json.loads(state_path.read_text())
        recorded_bin = Path(state["bin_dir"])
        return cls(
            directory=directory,
            ports=[int(p) for p in state["ports"]],
            bin_dir=bin_dir or recorded_bin,
            database=str(state.get("database", DEFAULT_DATABASE)),
        )

    def up(self) -> None:
        """Create what is missing and start what is stopped; safe to run again, also after
        a failed run (the state file is written first, so ``down`` can clean up)."""
        self._prepare_directory()
        self._save()
        if not self._initialized("primary"):
            self._check_ports_free()
            self._init_primary()
        if not self.is_running("primary"):
            self._step("starting primary")
            self.start_node("primary")
        self._ensure_database()
        for index, name in enumerate(self.replica_names, start=1):
            if not self._initialized(name):
                self._clone_replica(name, slot=f"stich_replica_{index}")
            if not self.is_running(name):
                self._step(f"starting {name}")
                self.start_node(name)
        self.wait_until_streaming()

    def down(self, *, purge: bool = True) -> None:
        """Stop every node (replicas first) and, with ``purge``, delete the directory."""
        for name in reversed(self.node_names):
            if self._data_dir(name).is_dir() and self.is_running(name):
                self._step(f"stopping {name}")
                self.stop_node(name)
        if purge and self.directory.exists():
            shutil.rmtree(self.directory)

    def start_node(self, node: str) -> None:
        try:
            self._pg_ctl(
                node, "start", "-w", "-t", str(int(_READY_TIMEOUT_S)), "-l", self._log(node)
            )
        except ClusterError as exc:
            raise ClusterError(f"{node} did not start: {self._log_tail(node)}") from exc

    def stop_node(self, node: str, mode: str = "fast") -> None:
        self._pg_ctl(node, "stop", "-w", "-m", mode)

    def is_running(self, node: str) -> bool:
        if not self._data_dir(node).is_dir():
            return False
        result = self._run(
            self._tool("pg_ctl"), "status", "-D", str(self._data_dir(node)), check=False
        )
        return result.returncode == 0

    def set_replica_setting(self, node: str, name: str, value: str) -> None:
        """Change a reloadable server setting on one node (e.g. recovery_min_apply_delay)."""
        with self.connect(node) as conn:
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
            conn.execute("SELECT pg_reload_conf()")

    def wait_until_streaming(self, timeout_s: float = _READY_TIMEOUT_S) -> None:
        """Block until every replica streams from the primary (fails after ``timeout_s``)."""
        expected = len(self.replica_names)
        deadline = time.monotonic() + timeout_s
        while True:
            with self.connect("primary") as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
            if row is not None and row[0] >= expected:
                return
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"only {row[0] if row else 0} of {expected} replicas are streaming; "
                    f"see the logs in {self.directory}"
                )
            time.sleep(0.05)

    def wait_until_replayed(self, timeout_s: float = _READY_TIMEOUT_S) -> None:
        """Block until every replica has replayed all WAL the primary has written so far."""
        with self.connect("primary") as conn:
            row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        target = _lsn_to_int(row[0])
        deadline = time.monotonic() + timeout_s
        for name in self.replica_names:
            with self.connect(name) as conn:
                while True:
                    row = conn.execute("SELECT pg_last_wal_replay_lsn()::text").fetchone()
                    if row is not None and row[0] and _lsn_to_int(row[0]) >= target:
                        break
                    if time.monotonic() > deadline:
                        raise ClusterError(f"{name} did not catch up with the primary in time")
                    time.sleep(0.01)

    def report(self) -> list[NodeReport]:
        """Each node: running or not, role, WAL position, replay state and lag in bytes."""
        reports: list[NodeReport] = []
        primary_position: int | None = None
        for name in self.node_names:
            port = self.port_of(name)
            if not self.is_running(name):
                reports.append(NodeReport(name=name, port=port, running=False))
                continue
            try:
                reports.append(self._describe(name, primary_position))
            except psycopg.Error:
                reports.append(NodeReport(name=name, port=port, running=True))
                continue
            if name == "primary" and reports[-1].position:
                primary_position = _lsn_to_int(reports[-1].position)
        return reports

    # ----- creation --------------------------------------------------------------------

    def _initialized(self, node: str) -> bool:
        data = self._data_dir(node)
        if node != "primary" and not (data / "standby.signal").is_file():
            return False  # pg_basebackup -R writes it last; without it the copy is partial
        return (data / "PG_VERSION").is_file()

    def _check_ports_free(self) -> None:
        for port in self.ports:
            if not port_is_free(port):
                raise ClusterError(f"port {port} is in use; choose another --base-port")

    def _init_primary(self) -> None:
        self._step("initdb primary")
        shutil.rmtree(self._data_dir("primary"), ignore_errors=True)
        self._run(
            self._tool("initdb"),
            "-D",
            str(self._data_dir("primary")),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
        )
        self._append_settings("primary")

    def _ensure_database(self) -> None:
        with self.connect("primary") as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def _clone_replica(self, name: str, *, slot: str) -> None:
        """A streaming replica of the primary: pg_basebackup -R with its own slot."""
        self._step(f"pg_basebackup {name}")
        shutil.rmtree(self._data_dir(name), ignore_errors=True)
        with self.connect("primary") as conn:  # a slot left by an earlier, failed attempt
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s",
                (slot,),
            )
        self._run(
            self._tool("pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port_of("primary")),
            "-U",
            "postgres",
            "-D",
            str(self._data_dir(name)),
            "-R",
            "-X",
            "stream",
            "-C",
            "-S",
            slot,
            "--checkpoint=fast",
            "--no-sync",
        )
        self._append_settings(name)

    def _append_settings(self, node: str) -> None:
        # Later lines win: a replica's copy of the primary's file gets its own port after it.
        config = self._data_dir(node) / "postgresql.conf"
        with config.open("a") as handle:
            handle.write(_SERVER_SETTINGS.format(port=self.port_of(node), name=f"stich-{node}"))

    def _save(self) -> None:
        state = {
            "ports": self.ports,
            "bin_dir": str(self.bin_dir),
            "database": self.database,
            "primary_url": self.primary_url,
            "replica_urls": self.replica_urls,
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")

    def _prepare_directory(self) -> None:
        if (
            self.directory.is_dir()
            and not (self.directory / STATE_FILE).exists()
            and any(self.directory.iterdir())
        ):
            raise ClusterError(
                f"{self.directory} is not empty and holds no local cluster; "
                "choose a new or empty --dir"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        owner = _postgres_owner()
        if owner is None:
            return
        os.chown(self.directory, owner.pw_uid, owner.pw_gid)
        self.directory.chmod(0o700)
        probe = self._run("test", "-w", str(self.directory), check=False)
        if probe.returncode != 0:
            raise ClusterError(
                f"the {POSTGRES_OS_USER} user cannot write to {self.directory} (a parent "
                "directory is probably private); choose another --dir, e.g. under /tmp"
            )

    # ----- processes -------------------------------------------------------------------

    def _describe(self, name: str, primary_position: int | None) -> NodeReport:
        with self.connect(name) as conn:
            row = conn.execute(
                "SELECT pg_is_in_recovery(),"
                " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text"
                "      ELSE pg_current_wal_lsn()::text END,"
                " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END"
            ).fetchone()
        assert row is not None
        in_recovery, position, paused = row
        lag = None
        if in_recovery and position and primary_position is not None:
            lag = max(0, primary_position - _lsn_to_int(position))
        return NodeReport(
            name=name,
            port=self.port_of(name),
            running=True,
            role="replica" if in_recovery else "primary",
            position=position,
            replay_paused=paused,
            lag_bytes=lag,
        )

    def _pg_ctl(self, node: str, *args: str) -> None:
        self._run(self._tool("pg_ctl"), "-D", str(self._data_dir(node)), *args)

    def _tool(self, name: str) -> str:
        return str(self.bin_dir / name)

    def _data_dir(self, node: str) -> Path:
        return self.directory / node

    def _log(self, node: str) -> str:
        return str(self.directory / f"{node}.log")

    def _log_tail(self, node: str, lines: int = 3) -> str:
        try:
            tail = Path(self._log(node)).read_text(errors="replace").strip().splitlines()
        except OSError:
            return f"no log at {self._log(node)}"
        return " | ".join(tail[-lines:]) + f" (log: {self._log(node)})"

    def _step(self, message: str) -> None:
        if self.on_step is not None:
            self.on_step(message)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if _postgres_owner() is not None:
            command = ["runuser", "-u", POSTGRES_OS_USER, "--", *command]
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments we built
            command,
            cwd=self.directory if self.directory.is_dir() else None,
            capture_output=True,
            text=True,
            check=False,
            env=_server_environment(),
        )
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise ClusterError(
                f"{Path(args[0]).name} failed (exit {result.returncode}): " + " | ".join(detail)
            )
        return result


def _postgres_owner() -> pwd.struct_passwd | None:
    """The OS account to run the server as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(POSTGRES_OS_USER)
    except KeyError:
        raise ClusterError(
            "PostgreSQL will not run as root and there is no 'postgres' OS user to run it as"
        ) from None


def _server_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.setdefault("LC_ALL", "C.UTF-8")
    return env


def _lsn_to_int(lsn: str) -> int:
    high, low = lsn.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@contextlib.contextmanager
def running_cluster(directory: Path, ports: list[int], bin_dir: Path) -> Iterator[LocalCluster]:
    """Start a cluster for the duration of the block, then stop it and delete it."""
    cluster = LocalCluster(directory=directory, ports=ports, bin_dir=bin_dir)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down(purge=True)
