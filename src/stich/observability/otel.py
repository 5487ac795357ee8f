"""OpenTelemetry tracing (extra ``stich[otel]``), enabled by ``STICH_OTEL_ENABLED`` alone.

Every engine of the ``Database`` is instrumented — the primary, the SQLite read pool and
each replica — so a trace shows which node ran each statement (``server.address`` /
``server.port`` on its span). HTTP requests get server spans. Spans go to an OTLP/HTTP
exporter configured by the standard ``OTEL_EXPORTER_OTLP_*`` variables (default
``http://localhost:4318``). Statements are recorded with placeholders, never parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stich import __version__
from stich.config import Settings, SettingsError
from stich.db import Database

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# Probes and scrapes would drown the traces that matter.
_UNTRACED_URLS = "healthz,readyz,metrics"


def init_otel(
    settings: Settings,
    database: Database,
    app: FastAPI | None = None,
    *,
    exporter: SpanExporter | None = None,
) -> TracerProvider | None:
    """Trace ``database``'s engines (and ``app``'s requests); ``exporter`` replaces OTLP (tests).

    The SQLAlchemy instrumentation is process-wide: calling this again for another
    Database moves it to that one's engines.
    """
    if not settings.otel_enabled:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise SettingsError(
            "STICH_OTEL_ENABLED is set but the OpenTelemetry packages are not installed: "
            "pip install 'stich[otel]'"
        ) from None
    resource = Resource.create(
        {
            "service.name": "stich",
            "service.version": __version__,
            "deployment.environment": settings.env.value,
        }
    )
    provider = TracerProvider(resource=resource)
    if exporter is None:
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = SQLAlchemyInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # The instrumentation declares SQLAlchemy < 2.1; its engine events are the same in 2.1
    # (tests/test_ops_tracing.py checks the spans), so its version check is skipped.
    instrumentor.instrument(engines=database.engines, tracer_provider=provider, skip_dep_check=True)
    if app is not None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, excluded_urls=_UNTRACED_URLS
        )
    return provider
