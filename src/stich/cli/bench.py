"""``stich bench``: how fast Stich is on a seeded dataset, side by side with the original's
query shapes and with the raw-driver floor, in one run (see docs/benchmarks.md)."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import make_url, text

from stich.bench.http import LoadPlan
from stich.bench.runner import Measurement, Report
from stich.bench.seed import SCALES, Scale
from stich.bench.workloads import QUICK, SLOW, Bench
from stich.cli.bench_http import http_mode, http_table
from stich.cli.common import state
from stich.cli.seed import (
    DatabaseUrlOption,
    count_apps,
    describe,
    refresh_rankings,
    seed_database,
    use_database_url,
)
from stich.config import Settings, load_settings
from stich.db import Database, migrate

console = Console(stderr=True)
# Tables are wide: piped into a file they keep their columns instead of 80.
out = Console(width=None if sys.stdout.isatty() else 200)

LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# The bench's own statements are slow on purpose (the original's shapes): no slow-query log.
NO_SLOW_LOG_MS = 3_600_000.0
# Targets of the gallery issue (docs/benchmarks.md).
FLOOR_TARGET = 2.0
ORIGINAL_TARGET = 100.0
PAGING_TARGET = 1.5


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"


def bench(
    scale: Annotated[
        Scale | None,
        typer.Option(
            help="Dataset to seed when the database is empty [default: medium]",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(
            help="Use the bench database of this backend: ./stich-bench-<scale>.db, or the "
            "database stich_bench_<scale> on the local PostgreSQL (created if missing) "
            "[default: the configured database]",
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            help="Run only workloads whose name starts with or globs this (repeatable, or "
            "comma-separated), e.g. feed/popular, 'feed/*/week', paging, login",
            show_default=False,
        ),
    ] = None,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
    http: Annotated[
        bool, typer.Option("--http", help="Also drive the HTTP API over loopback")
    ] = False,
    http_clients: Annotated[
        int, typer.Option(min=1, max=256, help="HTTP connections (wrk) or client threads")
    ] = 32,
    http_workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="Server processes: stich serve --workers [default: CPUs]"),
    ] = os.cpu_count() or 1,
    http_requests: Annotated[
        int, typer.Option(min=1, help="Requests per HTTP phase, at most (client threads only)")
    ] = 3000,
    http_seconds: Annotated[
        float, typer.Option(min=0.5, help="Seconds per HTTP phase, at most")
    ] = 15.0,
    replicas: Annotated[
        bool,
        typer.Option(
            "--replicas",
            help="Instead: feed throughput with 0, 1 and 2 local streaming replicas and the "
            "cost of a bookmark check (starts a scratch PostgreSQL cluster; default scale small)",
        ),
    ] = False,
    quick: Annotated[
        bool, typer.Option("--quick", help="A couple of iterations per workload (smoke runs)")
    ] = False,
    random_seed: Annotated[int, typer.Option("--seed", help="Random seed when seeding")] = 42,
) -> None:
    """Time every workload (p50, p95, ops/s) with the original's shapes and the floor."""
    use_database_url(database_url)
    patterns = [p.strip() for entry in only or [] for p in entry.split(",") if p.strip()]
    if replicas:
        _replicas_mode(scale or Scale.SMALL, quick, random_seed, json_file)
        return
    url = _bench_url(backend, scale or Scale.MEDIUM)
    migrate.upgrade(url)
    settings = load_settings(database_url=url, slow_query_ms=NO_SLOW_LOG_MS)
    report = Report(backend=settings.backend, scale="?")
    report.context.update(_machine(settings))
    db = Database(settings)
    try:
        _seed_if_empty(settings, db, scale or Scale.MEDIUM, random_seed, report)
        with console.status("preparing") as status:

            def progress(name: str) -> None:
                status.update(f"bench: {name}")
                if not console.is_terminal:  # a log file gets one line per workload
                    console.print(f"bench: {name}", highlight=False)
                refresh_rankings(db, settings)  # as the scheduled maintenance would

            workloads = Bench(settings, db, report, only=patterns, quick=quick, progress=progress)
            report.scale = _scale_of(workloads.fixtures.dataset["apps"])
            workloads.run()
        if http:
            plan = LoadPlan(http_workers, http_clients, http_seconds, http_requests)
            results = http_mode(settings, workloads, plan, console)
            report.context["http"] = [asdict(r) for r in results]
    finally:
        db.dispose()
        # Also after a failure: what was measured is printed, then the error.
        if report.measurements or "http" in report.context:
            _print_report(report)
        if json_file is not None:
            report.write_json(json_file)
            console.print(f"wrote {json_file}")


# -- where ------------------------------------------------------------------------------


def _bench_url(backend: Backend | None, scale: Scale) -> str:
    """The database to bench: --database-url, else the --backend bench database, else the
    configured one."""
    if state.database_url or backend is None:
        return state.settings().database_url
    if backend is Backend.SQLITE:
        return f"sqlite:///{Path.cwd() / f'stich-bench-{scale.value}.db'}"
    configured = make_url(os.environ.get("STICH_DATABASE_URL", LOCAL_POSTGRES))
    server = (
        configured if configured.get_backend_name() == "postgresql" else make_url(LOCAL_POSTGRES)
    )
    name = f"stich_bench_{scale.value}"
    _create_postgres_database(
        server.set(drivername="postgresql+psycopg", database="postgres"), name
    )
    return server.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


def _create_postgres_database(admin_url: object, name: str) -> None:
    libpq = make_url(str(admin_url)).set(drivername="postgresql")
    with psycopg.connect(libpq.render_as_string(hide_password=False), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            console.print(f"created database {name}")


def _seed_if_empty(
    settings: Settings, db: Database, scale: Scale, random_seed: int, report: Report
) -> None:
    if count_apps(db):
        return
    console.print(f"the database is empty: seeding {scale.value} first")
    seeded = seed_database(settings, db, scale, random_seed)
    console.print(describe(scale, seeded))
    report.context["seed_seconds"] = round(seeded.seconds, 1)


def _scale_of(apps: int) -> str:
    """The seeded scale whose app count is nearest (the dataset's counts are in the report)."""
    return min(SCALES, key=lambda s: abs(SCALES[s].apps - apps)).value


def _machine(settings: Settings) -> dict[str, object]:
    info: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
    if settings.backend == "postgresql":
        engine = Database(settings)
        try:
            with engine.read("fresh") as uow:
                info["postgresql"] = uow.session.execute(text("SHOW server_version")).scalar()
        finally:
            engine.dispose()
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# -- HTTP and replicas ----------------------------------------------------------------------


def _replicas_mode(scale: Scale, quick: bool, random_seed: int, json_file: Path | None) -> None:
    from stich.bench.replicas import (
        bookmark_costs,
        feed_throughput,
        replica_settings,
        start_cluster,
    )

    base = state.settings()
    directory = Path(tempfile.gettempdir()) / f"stich-bench-replicas-{os.getuid()}"
    cluster = start_cluster(directory, on_step=console.print)
    report = Report(backend="postgresql (1 primary + 2 local replicas)", scale=scale.value)
    report.context.update(_machine(base))
    seconds, clients = (2.0, 2) if quick else (10.0, 4)
    try:
        migrate.upgrade(cluster.primary_url)
        primary = Database(replica_settings(base, cluster, 0))
        try:
            seeded = seed_database(primary.settings, primary, scale, random_seed)
            console.print(describe(scale, seeded))
        finally:
            primary.dispose()
        cluster.wait_until_replayed()
        throughput = []
        for count in range(3):
            db = Database(replica_settings(base, cluster, count))
            try:
                with console.status(f"feed reads with {count} replicas"):
                    throughput.append(feed_throughput(db, count, clients, seconds))
                if count == 1:
                    for measurement in bookmark_costs(db, QUICK if quick else SLOW):
                        report.add(measurement)
            finally:
                db.dispose()
        report.context["replicas"] = [asdict(t) for t in throughput]
    finally:
        cluster.down(purge=True)
    _print_replicas(report)
    if json_file is not None:
        report.write_json(json_file)


# -- output ---------------------------------------------------------------------------------


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def _print_report(report: Report) -> None:
    c = report.context
    argon = c.get("argon2", "")
    dataset = c.get("dataset", {})
    counts = ", ".join(f"{n:,} {what}" for what, n in dataset.items())  # type: ignore[attr-defined]
    version = f"PostgreSQL {c['postgresql']}" if "postgresql" in c else f"SQLite {c['sqlite']}"
    out.print(
        f"\n[bold]stich bench[/bold] on {version}, scale {report.scale} ({counts}); "
        f"{c.get('cpus')} x {c.get('cpu')}; {argon}"
    )
    by_name: dict[tuple[str, str], Measurement] = {
        (m.name, m.group): m for m in report.measurements
    }
    ours = [m for m in report.measurements if m.group == "ours"]
    sections = [
        ("Feed, first page of 20 (anonymous)", [m for m in ours if m.name.startswith("feed/")]),
        (
            "Windowed sorts computed live (no fresh ranking snapshot)",
            [m for m in ours if m.name.startswith("feed-live/")],
        ),
        ("Deep pages", [m for m in ours if m.name.startswith("paging/")]),
        ("Other workloads", [m for m in ours if not m.name.startswith(("feed", "paging/"))]),
    ]
    for title, rows in sections:
        if rows:
            out.print(_table(title, rows, by_name))
    _print_targets(report)
    if "http" in c:
        out.print(http_table(c["http"]))  # type: ignore[arg-type]


def _table(
    title: str, rows: list[Measurement], by_name: dict[tuple[str, str], Measurement]
) -> Table:
    table = Table(title=title, title_justify="left")
    for header in ("workload", "p50 ms", "p95 ms", "ops/s", "floor p50", "ours/floor"):
        table.add_column(header, justify="left" if header == "workload" else "right")
    table.add_column("original p50", justify="right")
    table.add_column("faster than original", justify="right")
    table.add_column("note")
    for m in rows:
        floor = by_name.get((m.name, "floor"))
        theirs = by_name.get((m.name, "original"))
        table.add_row(
            m.name,
            _ms(m.p50_ms),
            _ms(m.p95_ms),
            f"{m.ops_per_second:,.0f}",
            _ms(floor.p50_ms) if floor else "",
            f"{m.p50_ms / floor.p50_ms:.2f}x" if floor and floor.p50_ms else "",
            _ms(theirs.p50_ms) if theirs else "",
            f"{theirs.p50_ms / m.p50_ms:,.0f}x" if theirs and m.p50_ms else "",
            m.note,
        )
    return table


def _print_targets(report: Report) -> None:
    """One line per target of the gallery issue: how many workloads meet it, the worst."""
    feed = [r for r in report.ratios if str(r["workload"]).startswith("feed/")]
    checks = [
        ("ours/floor", f"feed p50 within {FLOOR_TARGET:g}x of the floor", FLOOR_TARGET),
        (
            "ours/original",
            f"feed p50 >= {ORIGINAL_TARGET:g}x faster than the original",
            1 / ORIGINAL_TARGET,
        ),
    ]
    for kind, label, limit in checks:
        rows = [r for r in feed if r["kind"] == kind]
        if not rows:
            continue
        missed = sorted(
            (r for r in rows if float(str(r["ratio"])) > limit),
            key=lambda r: float(str(r["ratio"])),
            reverse=True,
        )
        line = f"{label}: {len(rows) - len(missed)}/{len(rows)} met"
        if missed:
            worst = ", ".join(f"{r['workload']} {_ratio(kind, r)}" for r in missed[:5])
            line += f"; worst: {worst}"
        out.print(line)
    for r in report.ratios:
        if str(r["kind"]).endswith("/page1"):
            ratio = float(str(r["ratio"]))
            verdict = "met" if ratio <= PAGING_TARGET else "NOT met"
            out.print(
                f"{r['workload']}: {ratio:.2f}x page 1 ({verdict}, target <= {PAGING_TARGET:g}x)"
            )


def _ratio(kind: str, row: dict[str, object]) -> str:
    ratio = float(str(row["ratio"]))
    if kind == "ours/original":
        return f"{1 / ratio:,.0f}x faster" if ratio else "inf"
    return f"{ratio:.1f}x"


def _print_replicas(report: Report) -> None:
    table = Table(title="Feed reads with local replicas", title_justify="left")
    for header in ("replicas", "client threads", "reads", "reads/s", "served by"):
        table.add_column(header)
    for t in report.context.get("replicas", []):  # type: ignore[attr-defined]
        table.add_row(
            str(t["replicas"]),
            str(t["clients"]),
            str(t["reads"]),
            f"{t['reads_per_second']:,.0f}",
            ", ".join(f"{k}: {v}" for k, v in sorted(t["served_by"].items())),
        )
    out.print(table)
    costs = Table(title="What a read's consistency costs (one feed page)", title_justify="left")
    for header in ("read", "p50 ms", "p95 ms", "ops/s"):
        costs.add_column(header)
    for m in report.measurements:
        costs.add_row(m.name, _ms(m.p50_ms), _ms(m.p95_ms), f"{m.ops_per_second:,.0f}")
    out.print(costs)
