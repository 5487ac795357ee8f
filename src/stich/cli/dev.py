"""``stich dev ...``: local tooling, e.g. a PostgreSQL primary with streaming replicas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from stich.db.local_cluster import (
    DEFAULT_BASE_PORT,
    ClusterError,
    LocalCluster,
    default_directory,
    find_pg_bin,
    free_ports,
    port_is_free,
)

app = typer.Typer(help="Local development tooling.", no_args_is_help=True)
replicas_app = typer.Typer(
    help="A scratch PostgreSQL primary with streaming replicas on this machine (loopback).",
    no_args_is_help=True,
)
app.add_typer(replicas_app, name="replicas")

DirOption = Annotated[
    Path,
    typer.Option(
        "--dir",
        help="Scratch directory holding the nodes' data, logs and cluster.json",
        file_okay=False,
    ),
]
_DEFAULT_REPLICAS = 2
_MAX_REPLICAS = 8


@replicas_app.command("up")
def replicas_up(
    replicas: Annotated[
        int | None,
        typer.Option(
            "--replicas",
            min=1,
            max=_MAX_REPLICAS,
            help=f"Number of streaming replicas (default {_DEFAULT_REPLICAS} for a new cluster)",
            show_default=False,
        ),
    ] = None,
    directory: DirOption = default_directory(),
    base_port: Annotated[
        int | None,
        typer.Option(
            "--base-port",
            min=1024,
            max=65535 - _MAX_REPLICAS,
            help=f"Primary port; replicas take the next ones (default {DEFAULT_BASE_PORT} "
            "if free, else any free ports)",
            show_default=False,
        ),
    ] = None,
    pg_bin: Annotated[
        Path | None,
        typer.Option(
            "--pg-bin",
            help="Directory with initdb, pg_ctl and pg_basebackup (default: STICH_PG_BIN, "
            "else the newest /usr/lib/postgresql/*/bin, else PATH)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start a primary and N streaming replicas (creating them on first use)."""
    bin_dir = find_pg_bin(pg_bin)
    if bin_dir is None:
        raise ClusterError(
            "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) not found; "
            "install the PostgreSQL server or pass --pg-bin"
        )
    directory = directory.absolute()
    cluster = LocalCluster.load(directory, bin_dir)
    if cluster is None:
        count = replicas or _DEFAULT_REPLICAS
        cluster = LocalCluster(
            directory=directory, ports=_choose_ports(count, base_port), bin_dir=bin_dir
        )
    elif replicas is not None and replicas != len(cluster.replica_names):
        raise ClusterError(
            f"{directory} already holds a cluster with {len(cluster.replica_names)} "
            "replicas; run `stich dev replicas down` first to change that"
        )
    _run_with_progress(cluster)
    _print_settings(cluster)


@replicas_app.command("status")
def replicas_status(directory: DirOption = default_directory()) -> None:
    """Show each node: running or not, role, WAL position and replay lag."""
    cluster = _existing(directory)
    table = Table(title=f"Local cluster in {cluster.directory}")
    for column in ("node", "port", "state", "role", "WAL position", "lag (bytes)", "replay"):
        table.add_column(column)
    for node in cluster.report():
        table.add_row(
            node.name,
            str(node.port),
            "running" if node.running else "stopped",
            node.role or "-",
            node.position or "-",
            "-" if node.lag_bytes is None else str(node.lag_bytes),
            {True: "paused", False: "replaying", None: "-"}[node.replay_paused],
        )
    Console().print(table)
    _print_settings(cluster)


@replicas_app.command("down")
def replicas_down(
    directory: DirOption = default_directory(),
    keep: Annotated[
        bool, typer.Option("--keep", help="Stop the nodes but keep their data for a later `up`")
    ] = False,
) -> None:
    """Stop every node and delete the scratch directory (unless --keep)."""
    cluster = LocalCluster.load(directory.absolute())
    if cluster is None:
        typer.echo(f"no local cluster in {directory}")
        return
    cluster.down(purge=not keep)
    typer.echo(f"stopped the cluster{' (data kept)' if keep else ' and deleted'} {directory}")


def _choose_ports(replicas: int, base_port: int | None) -> list[int]:
    count = replicas + 1
    if base_port is not None:
        return [base_port + offset for offset in range(count)]
    preferred = [DEFAULT_BASE_PORT + offset for offset in range(count)]
    if all(port_is_free(port) for port in preferred):
        return preferred
    return free_ports(count)


def _existing(directory: Path) -> LocalCluster:
    cluster = LocalCluster.load(directory.absolute())
    if cluster is None:
        raise ClusterError(
            f"no local cluster in {directory}; start one with `stich dev replicas up`"
        )
    return cluster


def _run_with_progress(cluster: LocalCluster) -> None:
    steps = 2 + 2 * len(cluster.replica_names)  # initdb + start, then backup + start each
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("checking", total=steps)

        def step(message: str) -> None:
            progress.update(task, description=message, advance=1)

        cluster.on_step = step
        try:
            cluster.up()
        finally:
            cluster.on_step = None


def _print_settings(cluster: LocalCluster) -> None:
    down = "stich dev replicas down"
    if cluster.directory != default_directory():
        down += f" --dir {cluster.directory}"
    typer.echo(
        f"\nA primary and {len(cluster.replica_names)} streaming replicas in {cluster.directory}."
        "\nUse them with:\n"
        f"  export STICH_DATABASE_URL={cluster.primary_url}\n"
        f"  export STICH_READ_REPLICA_URLS={','.join(cluster.replica_urls)}\n"
        f"then `stich db upgrade` and `stich serve`. Stop them with `{down}`."
    )
