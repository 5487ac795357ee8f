"""``stich bench --http``: the API over loopback, from concurrent clients.

Starts ``stich serve`` (uvicorn, one process) in a subprocess on a free loopback port
against the bench database, then drives one endpoint group at a time with a fixed number
of client threads, each with its own keep-alive connection. A phase stops by itself at
its request budget or its time limit, whichever comes first. Clients and server share
the machine's cores, so this measures the whole stack on one box, not the server alone.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from stich.db.local_cluster import free_ports

READY_TIMEOUT_S = 60.0
# httpx logs every request at INFO; thousands of lines would bury the results.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class HttpResult:
    phase: str
    clients: int
    requests: int
    errors: int
    seconds: float
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    note: str = ""


# One request of a phase: (client, request number) -> response.
Call = Callable[[httpx.Client, int], httpx.Response]


@dataclass(frozen=True)
class Phase:
    name: str
    call: Call
    ok: frozenset[int]
    note: str = ""


@contextlib.contextmanager
def running_server(database_url: str, log_path: Path) -> Iterator[str]:
    """``stich serve`` on a free loopback port; yields its base URL, stops it after."""
    port = free_ports(1)[0]
    env = dict(os.environ, STICH_DATABASE_URL=database_url, STICH_LOG_LEVEL="WARNING")
    command = [
        sys.executable,
        "-m",
        "stich.cli",
        "--database-url",
        database_url,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base_url, server, log_path)
            yield base_url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_ready(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the server exited with {server.returncode}:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /healthz within {READY_TIMEOUT_S:.0f}s")


def run_http_phases(
    database_url: str,
    phases: list[Phase],
    log_path: Path,
    *,
    clients: int,
    max_requests: int,
    max_seconds: float,
) -> list[HttpResult]:
    with running_server(database_url, log_path) as base_url:
        return [
            run_phase(
                base_url, phase, clients=clients, max_requests=max_requests, max_seconds=max_seconds
            )
            for phase in phases
        ]


def run_phase(
    base_url: str, phase: Phase, *, clients: int, max_requests: int, max_seconds: float
) -> HttpResult:
    """``clients`` threads share a budget of ``max_requests`` requests and a deadline."""
    numbers = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + max_seconds

    def client_loop(client_index: int) -> None:
        nonlocal errors
        headers = {"User-Agent": f"stich-bench-client/{client_index}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30.0) as client:
            while time.monotonic() < deadline:
                with lock:
                    n = next(numbers)
                if n >= max_requests:
                    return
                begin = time.perf_counter()
                try:
                    ok = phase.call(client, n).status_code in phase.ok
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - begin
                with lock:
                    latencies.append(elapsed)
                    errors += 0 if ok else 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    latencies.sort()
    return HttpResult(
        phase=phase.name,
        clients=clients,
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        requests_per_second=len(latencies) / seconds if seconds else 0.0,
        p50_ms=_percentile(latencies, 0.50) * 1000,
        p99_ms=_percentile(latencies, 0.99) * 1000,
        note=phase.note,
    )


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def phases(app_ids: list[str], tokens: list[str]) -> list[Phase]:
    """Feed (three sorts in turn), app detail (hot apps), star toggles (one user per token)."""
    feeds = ["sort=recent", "sort=popular", "sort=trending&period=week", "sort=viewed&period=month"]

    def feed(client: httpx.Client, n: int) -> httpx.Response:
        return client.get(f"/api/apps/public?{feeds[n % len(feeds)]}")

    def detail(client: httpx.Client, n: int) -> httpx.Response:
        return client.get(f"/api/apps/{app_ids[n % len(app_ids)]}")

    def star(client: httpx.Client, n: int) -> httpx.Response:
        # Request n and n+1 are a PUT and a DELETE of the same (user, app) star.
        pair = n // 2
        token = tokens[pair % len(tokens)]
        app_id = app_ids[(pair // len(tokens)) % len(app_ids)]
        headers = {"Authorization": f"Bearer {token}"}
        method = "PUT" if n % 2 == 0 else "DELETE"
        return client.request(method, f"/api/apps/{app_id}/star", headers=headers)

    return [
        Phase(
            "GET /api/apps/public",
            feed,
            frozenset({200}),
            "recent, popular, trending/week, viewed/month",
        ),
        Phase("GET /api/apps/{id}", detail, frozenset({200}), "public apps; records a view"),
        Phase("PUT|DELETE /api/apps/{id}/star", star, frozenset({200}), "signed-in users"),
    ]
