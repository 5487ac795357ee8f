"""Prometheus metrics of the view queues of this process (``/metrics``)."""

from __future__ import annotations

import weakref
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stich.analytics.queue import ViewQueue

_COUNTERS = (
    ("queued", "Views accepted by the view queue"),
    ("shed", "Views dropped: the buffer was full or the queue unreachable"),
    ("ingested", "Views handed to the database in committed batches"),
    ("counted", "Views that were new when ingested (the rest were repeats)"),
    ("batches", "View batches committed"),
    ("failures", "View batches that failed and were retried"),
)


class _ViewQueueCollector(Collector):
    def __init__(self) -> None:
        self.queues: weakref.WeakSet[ViewQueue] = weakref.WeakSet()

    def collect(self) -> Iterable[Metric]:
        queues = list(self.queues)
        for name, help_text in _COUNTERS:
            family = CounterMetricFamily(f"stich_views_{name}", help_text)
            family.add_metric([], sum(getattr(q.stats, name) for q in queues))
            yield family
        backlog = GaugeMetricFamily("stich_views_backlog", "Views waiting to be counted")
        backlog.add_metric([], sum(q.backlog() or 0 for q in queues))
        yield backlog


_collectors: dict[int, _ViewQueueCollector] = {}


def watch_view_queue(registry: CollectorRegistry, queue: ViewQueue) -> None:
    """Report ``queue`` in ``registry`` (one collector per registry, any number of queues)."""
    collector = _collectors.get(id(registry))
    if collector is None:
        collector = _collectors[id(registry)] = _ViewQueueCollector()
        registry.register(collector)
    collector.queues.add(queue)
