"""The optional integrations (extras stich[sentry] and stich[otel]) trace every engine,
the primary and each replica alike, into in-memory exporters (no network). Without the
extras these tests skip, except under CI=true where they must run."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from stich.api.app import create_app
from stich.db import Database
from stich.db.local_cluster import LocalCluster
from stich.observability.otel import init_otel
from stich.observability.sentry import init_sentry
from tests.conftest import IN_CI, make_settings
from tests.replica_cluster import (  # noqa: F401 - fixtures
    replica_cluster,
    replica_db,
    replica_settings,
)

SECRET = "tracing-secret-value-never-exported"


def require(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed (pip install 'stich[{extra}]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def read_on_every_node(db: Database) -> set[str]:
    """One statement on the primary and one on a replica; returns the nodes that served."""
    served = set()
    for consistency in ("fresh", "fast"):
        with db.read(consistency) as uow:
            uow.session.execute(text("SELECT CAST(:secret AS text)"), {"secret": SECRET})
            served.add(uow.served_by)
    return served


def port_of(cluster: LocalCluster, node: str) -> int:
    return cluster.port_of(node)


# -- Sentry -------------------------------------------------------------------------------


class CapturingTransport:
    """A Sentry transport that keeps envelopes in memory instead of sending them."""

    def __init__(self) -> None:
        from sentry_sdk.transport import Transport

        outer = self

        class _Transport(Transport):
            def capture_envelope(self, envelope: Any) -> None:
                outer.envelopes.append(envelope)

        self.envelopes: list[Any] = []
        self.transport = _Transport()

    def transactions(self) -> list[dict[str, Any]]:
        found = []
        for envelope in self.envelopes:
            for item in envelope.items:
                if item.type == "transaction":
                    found.append(json.loads(item.payload.get_bytes()))
        return found


@pytest.fixture
def sentry_capture() -> Iterator[CapturingTransport]:
    require("sentry_sdk", "sentry")
    import sentry_sdk

    capture = CapturingTransport()
    yield capture
    sentry_sdk.init()  # no DSN: the client goes quiet again


def test_sentry_reports_spans_from_primary_and_replica(
    sentry_capture: CapturingTransport,
    replica_db: Database,  # noqa: F811
    replica_cluster: LocalCluster,  # noqa: F811
    tmp_path: Path,
):
    import sentry_sdk

    settings = replica_settings(
        replica_cluster,
        tmp_path,
        sentry_dsn="https://public@sentry.invalid/1",
        sentry_traces_sample_rate=1.0,
    )
    init_sentry(settings, transport=sentry_capture.transport)

    with sentry_sdk.start_transaction(name="reads", op="test"):
        served = read_on_every_node(replica_db)
    sentry_sdk.flush()

    assert "primary" in served and any(node.startswith("replica-") for node in served)
    [transaction] = sentry_capture.transactions()
    db_spans = [span for span in transaction["spans"] if span["op"] == "db"]
    ports = {span["data"].get("server.port") for span in db_spans}
    replica_ports = {port_of(replica_cluster, name) for name in served if name != "primary"}
    assert port_of(replica_cluster, "primary") in ports
    assert replica_ports <= ports
    assert SECRET not in json.dumps(transaction)


# -- OpenTelemetry ------------------------------------------------------------------------


@pytest.fixture
def span_exporter() -> Iterator[Any]:
    require("opentelemetry.sdk", "otel")
    require("opentelemetry.instrumentation.sqlalchemy", "otel")
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    yield exporter
    SQLAlchemyInstrumentor().uninstrument()


def node_port(span: Any) -> int | None:
    attributes = span.attributes or {}
    port = attributes.get("server.port", attributes.get("net.peer.port"))
    return int(port) if port is not None else None


def test_otel_traces_primary_and_replica_engines(
    span_exporter: Any,
    replica_db: Database,  # noqa: F811
    replica_cluster: LocalCluster,  # noqa: F811
    tmp_path: Path,
):
    settings = replica_settings(replica_cluster, tmp_path, otel_enabled=True)
    init_otel(settings, replica_db, exporter=span_exporter)

    served = read_on_every_node(replica_db)

    spans = span_exporter.get_finished_spans()
    ports = {node_port(span) for span in spans if span.kind.name == "CLIENT"}
    replica_ports = {port_of(replica_cluster, name) for name in served if name != "primary"}
    assert replica_ports and port_of(replica_cluster, "primary") in ports
    assert replica_ports <= ports
    assert all(SECRET not in str(dict(span.attributes or {})) for span in spans)


def test_otel_traces_requests_and_their_statements(
    span_exporter: Any, database_url: str, tmp_path: Path, db: Database
):
    settings = make_settings(database_url, tmp_path)
    app = create_app(settings, db)
    traced = make_settings(database_url, tmp_path, otel_enabled=True)
    init_otel(traced, db, app, exporter=span_exporter)

    with TestClient(app) as client:
        assert client.get("/api/apps/01900000-0000-7000-8000-000000000000").status_code == 404

    spans = span_exporter.get_finished_spans()
    server = [span for span in spans if span.kind.name == "SERVER"]
    assert server and server[0].attributes.get("http.route") == "/api/apps/{app_id}"
    statements = [span for span in spans if span.kind.name == "CLIENT"]
    assert statements, "no database spans"
    assert {span.context.trace_id for span in statements} <= {server[0].context.trace_id}
