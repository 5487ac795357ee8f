"""Wire observability into the API app according to the settings (all off by default)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from prometheus_client.exposition import choose_encoder

from stich.analytics.queue_metrics import watch_view_queue
from stich.config import Settings
from stich.db import Database
from stich.errors import Unauthorized
from stich.observability.metrics import RequestObserver, StichMetrics, process_metrics
from stich.observability.otel import init_otel
from stich.observability.sentry import init_sentry

METRICS_PATH = "/metrics"


def install_observability(app: FastAPI, settings: Settings, database: Database) -> None:
    """``/metrics`` when STICH_METRICS_ENABLED; Sentry when STICH_SENTRY_DSN; OpenTelemetry
    when STICH_OTEL_ENABLED."""
    if settings.metrics_enabled:
        metrics = process_metrics()
        metrics.watch(database)
        watch_view_queue(metrics.registry, app.state.view_queue)
        app.state.request_observer = RequestObserver(app, metrics)
        app.add_api_route(
            METRICS_PATH,
            metrics_endpoint(metrics, settings),
            methods=["GET"],
            include_in_schema=False,
        )
    init_sentry(settings)
    init_otel(settings, database, app)


def metrics_endpoint(metrics: StichMetrics, settings: Settings) -> Callable[[Request], Response]:
    """GET /metrics (Prometheus text); with STICH_METRICS_TOKEN, only for that bearer token."""
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None

    def scrape(request: Request) -> Response:
        if expected is not None and not _bearer_matches(request, expected):
            raise Unauthorized(
                "send the metrics token: 'Authorization: Bearer <STICH_METRICS_TOKEN>'",
                code="metrics_token_required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        # Prometheus text by default; OpenMetrics when the scraper asks for it.
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(metrics.registry), headers={"Content-Type": content_type})

    return scrape


def _bearer_matches(request: Request, expected: str) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        token.strip().encode(), expected.encode()
    )
