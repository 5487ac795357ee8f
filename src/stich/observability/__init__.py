"""Signals about what Stich and its database are doing: Prometheus metrics (``/metrics``)
and the optional Sentry and OpenTelemetry integrations. The slow-query log and the
per-request statement counts live with the engines, in ``stich.db.instrumentation``."""
