"""The ``--http`` part of ``stich bench``: prepare the actors, run the phases, print them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from stich.bench import wrk
from stich.bench.http import HttpResult, LoadPlan, editors, phases, run_http_phases
from stich.bench.workloads import Bench
from stich.cli.seed import refresh_rankings
from stich.config import Settings


def http_mode(
    settings: Settings, workloads: Bench, plan: LoadPlan, console: Console
) -> list[HttpResult]:
    if plan.driver == "httpx":
        console.print(
            f"wrk is not installed: Python client threads drive the load ({wrk.INSTALL_HINT})"
        )
    refresh_rankings(workloads.db, settings)  # windowed sorts read fresh snapshots
    tokens = workloads.session_tokens(max(plan.connections, 16))
    owners = editors(workloads.db, settings, 16)
    app_ids = workloads.fixtures.public_app_ids[:100]
    log_path = Path(tempfile.gettempdir()) / f"stich-bench-server-{os.getpid()}.log"
    plan_phases = phases(app_ids, tokens, owners, sqlite=settings.backend == "sqlite")
    with console.status(f"HTTP: {plan.processes} server processes, load from {plan.driver}"):
        return run_http_phases(settings.database_url, plan_phases, log_path, plan)


def http_table(rows: list[dict[str, object]]) -> Table:
    first = rows[0] if rows else {}
    processes = first.get("processes", 1)
    driver = first.get("driver", "httpx")
    title = f"HTTP over loopback (uvicorn, {processes} server processes; load from {driver})"
    table = Table(title=title, title_justify="left")
    headers = (
        "endpoint",
        "connections",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "server CPU ms/req",
    )
    for header in (*headers, "note"):
        table.add_column(header, justify="left" if header in ("endpoint", "note") else "right")
    for r in rows:
        table.add_row(
            str(r["phase"]),
            str(r["clients"]),
            str(r["requests"]),
            str(r["errors"]),
            f"{float(str(r['requests_per_second'])):,.0f}",
            _ms(float(str(r["p50_ms"]))),
            _ms(float(str(r["p99_ms"]))),
            "" if r.get("server_cpu_ms") is None else f"{float(str(r['server_cpu_ms'])):.2f}",
            str(r["note"]),
        )
    return table


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"
