"""Prometheus metrics: HTTP requests, database statements, read routing, replica health.

One registry per process (as Prometheus expects of a process): counters only grow, and
every API app and ``Database`` in the process reports into it. The database numbers come
from the hooks in :mod:`stich.db.instrumentation` (every instrumented engine, primary and
replicas alike); the HTTP numbers from the request middleware; replica health and pool
use are read when scraped. Label values are bounded: routes are templates
(``/api/apps/{app_id}``), never raw paths, and unknown paths share one label.

Under several worker processes each keeps its own numbers; scrape each worker, or see
docs/operations.md.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

from fastapi.routing import APIRoute
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.routing import Route, compile_path

from stich.db import Database
from stich.db.instrumentation import (
    ReadRouteEvent,
    add_read_route_observer,
    add_statement_observer,
)
from stich.db.replicas import ReplicaHealth

_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATEMENT_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)
_COUNT_BUCKETS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)


@dataclass(frozen=True)
class RequestRecord:
    """One finished HTTP request, as the middleware saw it."""

    method: str
    path: str  # the raw path; metrics label it by its route template
    status: int
    seconds: float
    db_statements: int
    db_seconds: float
    mounted_route: str | None = None  # template of a mounted app's route (/admin/...)


class StichMetrics:
    """The metrics of this process and the registry that exposes them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        r = self.registry
        self.http_requests = Counter(
            "stich_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "stich_http_request_duration_seconds",
            "Time to handle an HTTP request",
            ["method", "route"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.request_statements = Histogram(
            "stich_http_request_db_statements",
            "Database statements one HTTP request ran",
            buckets=_COUNT_BUCKETS,
            registry=r,
        )
        self.request_db_seconds = Histogram(
            "stich_http_request_db_seconds",
            "Database time of one HTTP request",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.db_statements = Counter(
            "stich_db_statements",
            "Statements executed, by the engine (node) that ran them",
            ["engine"],
            registry=r,
        )
        self.db_statement_seconds = Histogram(
            "stich_db_statement_duration_seconds",
            "Statement execution time, by engine",
            ["engine"],
            buckets=_STATEMENT_BUCKETS,
            registry=r,
        )
        self.db_slow_statements = Counter(
            "stich_db_slow_statements",
            "Statements slower than STICH_SLOW_QUERY_MS, by engine",
            ["engine"],
            registry=r,
        )
        self.read_routes = Counter(
            "stich_db_read_routes",
            "Read units of work, by the node that served them and why "
            "the primary served one a replica could have (fallback)",
            ["served_by", "consistency", "fallback"],
            registry=r,
        )
        self.read_failovers = Counter(
            "stich_db_read_failovers",
            "Reads moved to the primary after their replica failed",
            ["replica"],
            registry=r,
        )
        self.bookmark_wait_seconds = Histogram(
            "stich_db_read_bookmark_wait_seconds",
            "Time a read waited for a replica to reach its bookmark",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=r,
        )
        self._databases: weakref.WeakSet[Database] = weakref.WeakSet()
        self.registry.register(_DatabaseCollector(self._databases))

    # -- feeds -----------------------------------------------------------------------

    def observe_request(self, record: RequestRecord, route: str) -> None:
        self.http_requests.labels(record.method, route, str(record.status)).inc()
        self.http_seconds.labels(record.method, route).observe(record.seconds)
        self.request_statements.observe(record.db_statements)
        self.request_db_seconds.observe(record.db_seconds)

    def observe_statement(self, engine: str, seconds: float, slow: bool) -> None:
        self.db_statements.labels(engine).inc()
        self.db_statement_seconds.labels(engine).observe(seconds)
        if slow:
            self.db_slow_statements.labels(engine).inc()

    def observe_read_route(self, event: ReadRouteEvent) -> None:
        fallback = _slug(event.fallback) if event.fallback else "none"
        self.read_routes.labels(event.served_by, event.consistency, fallback).inc()
        if event.failed_over_from:
            self.read_failovers.labels(event.failed_over_from).inc()
        if event.consistency == "bookmark":
            self.bookmark_wait_seconds.observe(event.waited_ms / 1000)

    def watch(self, database: Database) -> None:
        """Report this database's pools and replica health when scraped."""
        self._databases.add(database)


@cache
def process_metrics() -> StichMetrics:
    """The process's metrics; the first call connects them to the database hooks."""
    metrics = StichMetrics()
    add_statement_observer(metrics.observe_statement)
    add_read_route_observer(metrics.observe_read_route)
    return metrics


class RequestObserver:
    """Feeds one app's requests into the metrics, labelled by route template."""

    def __init__(self, app: Starlette, metrics: StichMetrics) -> None:
        self.templates = RouteTemplates(app)
        self.metrics = metrics

    def __call__(self, record: RequestRecord) -> None:
        route = record.mounted_route or self.templates.template_of(record.path)
        self.metrics.observe_request(record, route)


class RouteTemplates:
    """``/api/apps/0190...`` -> ``/api/apps/{app_id}``, so labels stay few.

    The templates are the app's documented paths (OpenAPI) and its other top-level routes,
    compiled on first use; fixed segments win over parameters (``/api/apps/public`` over
    ``/api/apps/{app_id}``). A path no route serves is "unmatched".
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def template_of(self, path: str) -> str:
        if self._compiled is None:
            self._compiled = self._compile()
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return "unmatched"

    def _compile(self) -> list[tuple[re.Pattern[str], str]]:
        templates = {
            route.path
            for route in self.app.routes
            if isinstance(route, Route | APIRoute) and isinstance(route.path, str)
        }
        openapi = getattr(self.app, "openapi", None)
        if callable(openapi):
            templates.update(openapi().get("paths", {}))
        ordered = sorted(templates, key=lambda t: (t.count("{"), -len(t), t))
        return [(compile_path(template)[0], template) for template in ordered]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "other"


def engine_names(database: Database) -> list[tuple[str, object]]:
    """(name, engine) for every engine of ``database``, named as the slow-query log names them."""
    replica_names = {}
    if database.replicas is not None:
        replica_names = {id(r.engine): r.name for r in database.replicas.replicas}
    named: list[tuple[str, object]] = []
    for engine in database.engines:
        if engine is database.primary:
            named.append(("primary", engine))
        else:
            named.append((replica_names.get(id(engine), "primary-read"), engine))
    return named


class _DatabaseCollector(Collector):
    """Pool use and replica health, read at scrape time (no background work)."""

    def __init__(self, databases: weakref.WeakSet[Database]) -> None:
        self.databases = databases

    def describe(self) -> Iterable[Metric]:
        return []  # values vary with the databases watched; nothing to check up front

    def collect(self) -> Iterable[Metric]:
        in_use: dict[str, float] = {}
        replicas: dict[str, ReplicaHealth] = {}
        for database in list(self.databases):
            for name, engine in engine_names(database):
                checked_out = getattr(getattr(engine, "pool", None), "checkedout", None)
                if callable(checked_out):
                    in_use[name] = in_use.get(name, 0.0) + float(checked_out())
            if database.replicas is not None:
                replicas.update({r.name: r.health for r in database.replicas.replicas})
        pool = GaugeMetricFamily(
            "stich_db_pool_connections_in_use", "Pooled connections checked out", labels=["engine"]
        )
        for name, value in in_use.items():
            pool.add_metric([name], value)
        usable = GaugeMetricFamily(
            "stich_db_replica_usable", "1 if reads may use the replica, else 0", labels=["replica"]
        )
        lag_seconds = GaugeMetricFamily(
            "stich_db_replica_lag_seconds",
            "Replay lag at the last health check",
            labels=["replica"],
        )
        lag_bytes = GaugeMetricFamily(
            "stich_db_replica_lag_bytes",
            "WAL bytes behind the primary at the last health check",
            labels=["replica"],
        )
        for name, health in replicas.items():
            usable.add_metric([name], 1.0 if health.usable else 0.0)
            if health.lag_seconds is not None:
                lag_seconds.add_metric([name], health.lag_seconds)
            if health.lag_bytes is not None:
                lag_bytes.add_metric([name], float(health.lag_bytes))
        return [pool, usable, lag_seconds, lag_bytes]
