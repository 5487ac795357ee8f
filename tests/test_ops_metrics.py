"""Observability: the slow-query log (statement, duration, engine; parameters never), the
per-request database numbers in the access log, and GET /metrics in Prometheus text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from structlog.testing import capture_logs

from stich.api.app import create_app
from stich.config import Settings
from stich.db import Database
from stich.db.instrumentation import ReadRouteEvent, record_read_route
from stich.observability.metrics import process_metrics
from tests.conftest import make_settings
from tests.factories import make_user
from tests.replica_cluster import replica_cluster, replica_db  # noqa: F401 - fixtures

SECRET = "hunter2-do-not-log-me"
TOKEN = "scrape-token-" + "s" * 20


def slow_statement(backend: str) -> str:
    """A statement that takes a while on purpose, with a bound parameter that must not leak."""
    if backend == "postgresql":
        return "SELECT pg_sleep(0.2), CAST(:secret AS text)"
    return (
        "WITH RECURSIVE counter(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM counter"
        " WHERE n < 2000000) SELECT count(*), :secret FROM counter"
    )


def samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, keyed by (name, labels)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page.get((name, frozenset(labels.items())), 0.0)


# -- the slow-query log -------------------------------------------------------------------


@pytest.fixture
def slow_db(database_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(make_settings(database_url, tmp_path, slow_query_ms=20))
    yield database
    database.dispose()


def test_slow_query_log_names_statement_engine_and_hides_parameters(slow_db: Database):
    with capture_logs() as logs, slow_db.read() as uow:
        uow.session.execute(text(slow_statement(slow_db.backend)), {"secret": SECRET})

    slow = [entry for entry in logs if entry["event"] == "slow query"]
    assert len(slow) == 1
    [entry] = slow
    assert entry["log_level"] == "warning"
    assert entry["engine"] == "primary"
    assert entry["duration_ms"] >= 20
    assert ("pg_sleep" if slow_db.backend == "postgresql" else "WITH RECURSIVE") in entry[
        "statement"
    ]
    assert entry["parameters"] == "[redacted]"
    assert SECRET not in repr(logs)


def test_slow_query_log_names_the_replica_that_ran_it(replica_db: Database):  # noqa: F811
    with capture_logs() as logs, replica_db.read("fast") as uow:
        uow.session.execute(
            text("SELECT pg_sleep(0.25), CAST(:secret AS text)"), {"secret": SECRET}
        )
        served_by = uow.served_by

    assert served_by.startswith("replica-")
    [entry] = [e for e in logs if e["event"] == "slow query" and "pg_sleep" in e["statement"]]
    assert entry["engine"] == served_by
    assert SECRET not in repr(logs)


def test_access_log_carries_statements_and_database_time(client: TestClient, db: Database):
    member = make_user(db)
    with capture_logs() as logs:
        assert client.get("/api/me", headers=member.headers).status_code == 200

    [request] = [entry for entry in logs if entry["event"] == "request"]
    assert request["path"] == "/api/me" and request["status"] == 200
    assert request["db_statements"] >= 1
    assert request["db_ms"] >= 0


# -- /metrics -----------------------------------------------------------------------------


def metrics_client(settings: Settings, db: Database) -> TestClient:
    return TestClient(create_app(settings, db), raise_server_exceptions=False)


def test_metrics_are_off_by_default(client: TestClient):
    assert client.get("/metrics").status_code == 404


def test_metrics_parse_as_prometheus_text(database_url: str, tmp_path: Path, db: Database):
    settings = make_settings(database_url, tmp_path, metrics_enabled=True)
    member = make_user(db)
    with metrics_client(settings, db) as client:
        before = samples(client.get("/metrics").text)
        assert client.get("/api/me", headers=member.headers).status_code == 200
        missing = "01900000-0000-7000-8000-000000000000"
        assert client.get(f"/api/apps/{missing}").status_code == 404
        assert client.get("/no/such/page").status_code == 404
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    after = samples(response.text)
    families = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "stich_http_requests",
        "stich_http_request_duration_seconds",
        "stich_http_request_db_statements",
        "stich_db_statements",
        "stich_db_statement_duration_seconds",
        "stich_db_read_routes",
        "stich_db_pool_connections_in_use",
    } <= families

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Routes are templates and unknown paths share one label: the label set stays bounded.
    assert grew("stich_http_requests_total", method="GET", route="/api/me", status="200") == 1
    assert (
        grew("stich_http_requests_total", method="GET", route="/api/apps/{app_id}", status="404")
        == 1
    )
    assert grew("stich_http_requests_total", method="GET", route="unmatched", status="404") == 1
    assert not any(missing in str(key) for key in after)
    assert grew("stich_http_request_duration_seconds_count", method="GET", route="/api/me") == 1
    assert grew("stich_db_statements_total", engine="primary") >= 1
    assert grew("stich_db_statement_duration_seconds_count", engine="primary") >= 1
    assert grew("stich_http_request_db_statements_count") >= 3
    fresh = {"served_by": "primary", "consistency": "fresh", "fallback": "none"}
    assert grew("stich_db_read_routes_total", **fresh) >= 1  # GET /api/me reads fresh


def test_metrics_token_is_required_when_set(database_url: str, tmp_path: Path, db: Database):
    settings = make_settings(database_url, tmp_path, metrics_enabled=True, metrics_token=TOKEN)
    with metrics_client(settings, db) as client:
        anonymous = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer not-the-token-at-all"})
        right = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})

    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert anonymous.json()["error"]["code"] == "metrics_token_required"
    assert right.status_code == 200
    assert "stich_http_requests_total" in right.text


def test_read_routes_are_counted():
    metrics = process_metrics()
    page = samples_of(metrics)

    record_read_route(ReadRouteEvent(served_by="replica-1", consistency="fast"))
    record_read_route(
        ReadRouteEvent(
            served_by="primary",
            consistency="bookmark",
            fallback="replicas behind the bookmark",
            waited_ms=100.0,
        )
    )
    record_read_route(
        ReadRouteEvent(served_by="primary", consistency="fast", failed_over_from="replica-2")
    )

    grown = samples_of(metrics)
    routes = "stich_db_read_routes_total"
    assert (
        value(grown, routes, served_by="replica-1", consistency="fast", fallback="none")
        - value(page, routes, served_by="replica-1", consistency="fast", fallback="none")
        == 1
    )
    behind = {
        "served_by": "primary",
        "consistency": "bookmark",
        "fallback": "replicas_behind_the_bookmark",
    }
    assert value(grown, routes, **behind) - value(page, routes, **behind) == 1
    failovers = "stich_db_read_failovers_total"
    assert (
        value(grown, failovers, replica="replica-2") - value(page, failovers, replica="replica-2")
        == 1
    )
    waits = "stich_db_read_bookmark_wait_seconds_count"
    assert value(grown, waits) - value(page, waits) == 1


def samples_of(metrics: object) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client import generate_latest

    return samples(generate_latest(metrics.registry).decode())  # type: ignore[attr-defined]


def test_replica_statements_and_health_are_reported(replica_db: Database, tmp_path: Path):  # noqa: F811
    settings = replica_db.settings.model_copy(update={"metrics_enabled": True})
    with metrics_client(settings, replica_db) as client:
        before = samples(client.get("/metrics").text)
        with replica_db.read("fast") as uow:
            uow.session.execute(text("SELECT 1"))
            served_by = uow.served_by
        page = samples(client.get("/metrics").text)

    assert served_by.startswith("replica-")
    statements = "stich_db_statements_total"
    assert value(page, statements, engine=served_by) > value(before, statements, engine=served_by)
    routed = {"served_by": served_by, "consistency": "fast", "fallback": "none"}
    routes = "stich_db_read_routes_total"
    assert value(page, routes, **routed) - value(before, routes, **routed) == 1
    for replica in ("replica-1", "replica-2"):
        assert value(page, "stich_db_replica_usable", replica=replica) == 1.0
        assert ("stich_db_replica_lag_bytes", frozenset({("replica", replica)})) in page
