"""``stich bench --http``: the API over loopback, from concurrent connections.

Starts ``stich serve --workers N`` in a subprocess on a free loopback port against the
bench database, then drives one phase at a time. Each phase is a list of requests
(method, path, bearer token, JSON body) that every connection cycles through from its own
offset. The load comes from ``wrk`` when it is installed (:mod:`stich.bench.wrk`): it
costs little CPU, so the server's share is measured. Without it, Python client threads
(httpx, one keep-alive connection each) do the same, and take a good part of the CPU.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from stich.apps.models import App
from stich.apps.visibility import publicly_visible
from stich.audit.service import RequestMeta
from stich.auth.outcomes import AuthPolicy, Client
from stich.auth.service import AuthService
from stich.bench import wrk
from stich.config import Settings
from stich.crypto.tokens import KeyedHasher
from stich.db import Database
from stich.db.base import utcnow
from stich.db.local_cluster import free_ports
from stich.users.models import User

READY_TIMEOUT_S = 60.0
RATE_BUDGETS = ("SIGNUP", "SIGNIN", "SIGNIN_EMAIL", "REFRESH", "PASSWORD", "WRITE", "VIEW", "FEED")
WRITERS = 16  # the concurrent-writers phase: connections ...
WRITERS_SECONDS = 30.0  # ... and how long
WARM_UP_SECONDS = 5.0
# httpx logs every request at INFO; thousands of lines would bury the results.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    token: str | None = None
    body: dict[str, Any] | None = None


@dataclass(frozen=True)
class Phase:
    name: str
    requests: list[HttpRequest]
    connections: int | None = None  # None: the bench's --http-clients
    seconds: float | None = None  # None: the bench's --http-seconds
    note: str = ""


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
    driver: str = "httpx"
    processes: int = 1
    # CPU time of the server processes per request: steadier than req/s when other work
    # shares the machine (None where /proc is not there to read it).
    server_cpu_ms: float | None = None


@dataclass(frozen=True)
class Editor:
    """A signed-in app owner and one of their public apps (the mixed phase edits it)."""

    token: str
    app_id: str


@dataclass
class LoadPlan:
    processes: int
    connections: int
    seconds: float
    max_requests: int  # only the httpx driver stops early at a budget
    driver: str = field(default_factory=lambda: "wrk" if wrk.wrk_binary() else "httpx")


@dataclass(frozen=True)
class Server:
    base_url: str
    pid: int

    def cpu_seconds(self) -> float | None:
        """User + system CPU of the server and its worker processes so far (Linux)."""
        try:
            return sum(_cpu_of(pid) for pid in _process_tree(self.pid))
        except OSError:
            return None


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


@contextlib.contextmanager
def running_server(database_url: str, log_path: Path, processes: int = 1) -> Iterator[Server]:
    """``stich serve`` on a free loopback port; yields it, stops it after."""
    port = free_ports(1)[0]
    # No maintenance schedule inside the measured processes (the bench refreshes the
    # rankings itself, before the phases); queued views are still counted.
    env = dict(
        os.environ,
        STICH_DATABASE_URL=database_url,
        STICH_LOG_LEVEL="WARNING",
        STICH_EMBEDDED_WORKER="off",
        # Limits on but out of reach: the bench pays the limiter's cost, never its 429s.
        **{f"STICH_RATE_LIMIT_{budget}": "1000000/second" for budget in RATE_BUDGETS},
    )
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
        "--workers",
        str(processes),
    ]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(base_url, server, log_path)
            yield Server(base_url, server.pid)
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
    database_url: str, phases: list[Phase], log_path: Path, plan: LoadPlan
) -> list[HttpResult]:
    with running_server(database_url, log_path, plan.processes) as server:
        warm_up(server, phases, plan)
        return [run_phase(server, phase, plan) for phase in phases]


def warm_up(server: Server, phases: list[Phase], plan: LoadPlan) -> None:
    """The phases' reads for a few seconds, not measured: a fresh server fills its pools,
    prepares its statements and compiles its queries first (PostgreSQL feed, first 8 s:
    ~800 req/s, then ~1,150), which a server in service has long done."""
    reads = [r for phase in phases for r in phase.requests if r.method == "GET"]
    if not reads:
        return
    warm = Phase("warm-up", reads, seconds=WARM_UP_SECONDS)
    run_phase(server, warm, replace(plan, seconds=WARM_UP_SECONDS))


def run_phase(server: Server, phase: Phase, plan: LoadPlan) -> HttpResult:
    connections = phase.connections or plan.connections
    seconds = phase.seconds or plan.seconds
    base_url = server.base_url
    cpu_before = server.cpu_seconds()
    if plan.driver == "wrk":
        totals = wrk.run_wrk(base_url, phase.requests, connections=connections, seconds=seconds)
    else:
        budget = plan.max_requests if phase.seconds is None else None
        totals = _run_httpx(base_url, phase.requests, connections, seconds, budget)
    cpu_after = server.cpu_seconds()
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and totals["requests"]:
        cpu_ms = (cpu_after - cpu_before) * 1000 / totals["requests"]
    return HttpResult(
        phase=phase.name,
        clients=connections,
        requests=int(totals["requests"]),
        errors=int(totals["errors"]),
        seconds=totals["seconds"],
        requests_per_second=totals["requests"] / totals["seconds"] if totals["seconds"] else 0,
        p50_ms=totals["p50_ms"],
        p99_ms=totals["p99_ms"],
        note=phase.note,
        driver=plan.driver,
        processes=plan.processes,
        server_cpu_ms=cpu_ms,
    )


def _run_httpx(
    base_url: str,
    requests: list[HttpRequest],
    connections: int,
    seconds: float,
    budget: int | None,
) -> dict[str, float]:
    """``connections`` threads cycle through ``requests`` until the deadline (or budget)."""
    lock = threading.Lock()
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    def client_loop(index: int) -> None:
        nonlocal errors
        position = index * 7919  # the same offsets as the wrk script
        with httpx.Client(base_url=base_url, timeout=10.0) as client:
            while time.monotonic() < deadline and (budget is None or len(latencies) < budget):
                position += 1
                spec = requests[position % len(requests)]
                headers = {"Authorization": f"Bearer {spec.token}"} if spec.token else {}
                begin = time.perf_counter()
                try:
                    response = client.request(
                        spec.method, spec.path, headers=headers, json=spec.body
                    )
                    ok = response.status_code < 400
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - begin
                with lock:
                    latencies.append(elapsed)
                    errors += 0 if ok else 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latencies.sort()
    return {
        "requests": float(len(latencies)),
        "errors": float(errors),
        "seconds": time.perf_counter() - started,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def editors(db: Database, settings: Settings, count: int) -> list[Editor]:
    """Sessions of ``count`` active users who own a public app, each with one such app."""
    with db.read("fresh") as uow:
        rows = uow.session.execute(
            select(App.user_id, func.min(App.id))
            .join(User, User.id == App.user_id)
            .where(publicly_visible(), User.deleted_at.is_(None), User.is_active.is_(True))
            .group_by(App.user_id)
            .order_by(App.user_id)
            .limit(count)
        ).all()
    hasher = KeyedHasher(settings.server_key_bytes())
    meta = RequestMeta(ip_hash=None, user_agent="stich-bench")
    client = Client(ip="127.0.0.1", user_agent="stich-bench")
    with db.write() as uow:
        service = AuthService(uow.session, meta, AuthPolicy.from_settings(settings), hasher)
        return [
            Editor(service.open_session(user_id, client, utcnow()).access_token, app_id)
            for user_id, app_id in rows
            if user_id is not None
        ]


# -- the phases -------------------------------------------------------------------------------

FEEDS = ["sort=recent", "sort=popular", "sort=trending&period=week", "sort=viewed&period=month"]


def phases(
    app_ids: list[str], tokens: list[str], editors: list[Editor], *, sqlite: bool
) -> list[Phase]:
    """Feed, detail, star toggles, a 90/10 mix, and (SQLite) 16 writers for 30 s."""
    feed = [HttpRequest("GET", f"/api/apps/public?{query}") for query in FEEDS]
    detail = [HttpRequest("GET", f"/api/apps/{app_id}") for app_id in app_ids]
    stars = _star_toggles(app_ids, tokens)
    edits = [
        HttpRequest("PATCH", f"/api/apps/{e.app_id}", e.token, {"description": f"bench edit {n}"})
        for n, e in enumerate(editors)
    ]
    result = [
        Phase("GET /api/apps/public", feed, note="recent, popular, trending/week, viewed/month"),
        Phase("GET /api/apps/{id}", detail, note="the 100 most viewed public apps"),
        Phase("PUT|DELETE /api/apps/{id}/star", stars, note="signed-in users"),
        Phase("mixed 90/10", _mixed(feed, detail, stars, edits), note=_MIXED_NOTE),
    ]
    if sqlite:
        writes = _interleave(stars, edits)
        result.append(
            Phase(
                f"{WRITERS} writers",
                writes,
                connections=WRITERS,
                seconds=WRITERS_SECONDS,
                note="star toggles and app edits, all writes",
            )
        )
    return result


_MIXED_NOTE = "45% feed, 45% detail, 5% star toggles, 5% app edits"


def _star_toggles(app_ids: list[str], tokens: list[str]) -> list[HttpRequest]:
    """A PUT then a DELETE of each (user, app) star, so the stars end as they began."""
    toggles: list[HttpRequest] = []
    for n, token in enumerate(tokens):
        for app_id in app_ids[n :: len(tokens)][:25]:
            path = f"/api/apps/{app_id}/star"
            toggles += [HttpRequest("PUT", path, token), HttpRequest("DELETE", path, token)]
    return toggles


def _mixed(
    feed: list[HttpRequest],
    detail: list[HttpRequest],
    stars: list[HttpRequest],
    edits: list[HttpRequest],
) -> list[HttpRequest]:
    """1,000 requests in a fixed shuffled order: 450 feed, 450 detail, 50 stars, 50 edits.

    Connections start at different offsets of the list, so a star's PUT and DELETE may
    come from different connections; both are idempotent, so every answer is a 200."""
    pick = random.Random(18)  # noqa: S311 - a load mix, not a secret
    requests = (
        [feed[n % len(feed)] for n in range(450)]
        + [detail[n % len(detail)] for n in range(450)]
        + stars[:50]
        + [edits[n % len(edits)] for n in range(50)]
    )
    pick.shuffle(requests)
    return requests


def _interleave(a: list[HttpRequest], b: list[HttpRequest]) -> list[HttpRequest]:
    merged: list[HttpRequest] = []
    for n in range(max(len(a), len(b))):
        merged += [a[n % len(a)], b[n % len(b)]]
    return merged
