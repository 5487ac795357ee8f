"""Timing workloads: warm-up, then repeated runs; p50, p95 and operations per second.

A workload is a callable doing one operation. Timing is wall-clock per call with
``perf_counter``; each workload runs for a minimum number of iterations and a minimum
time, whichever is later, bounded by a maximum time.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Measurement:
    name: str
    group: str  # "ours", "original" or "floor"
    iterations: int
    p50_ms: float
    p95_ms: float
    ops_per_second: float
    note: str = ""

    def row(self) -> list[str]:
        return [
            self.name,
            self.group,
            f"{self.p50_ms:.3f}",
            f"{self.p95_ms:.3f}",
            f"{self.ops_per_second:,.0f}",
            str(self.iterations),
        ]


@dataclass
class Budget:
    warmup: int = 3
    min_iterations: int = 20
    min_seconds: float = 0.3
    max_seconds: float = 3.0
    max_iterations: int = 5_000


def measure(
    name: str,
    operation: Callable[[], object],
    *,
    group: str = "ours",
    budget: Budget | None = None,
    note: str = "",
) -> Measurement:
    budget = budget or Budget()
    for _ in range(budget.warmup):
        operation()
    samples: list[float] = []
    started = time.perf_counter()
    while True:
        begin = time.perf_counter()
        operation()
        samples.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - started
        enough = len(samples) >= budget.min_iterations and elapsed >= budget.min_seconds
        if enough or elapsed >= budget.max_seconds or len(samples) >= budget.max_iterations:
            break
    samples.sort()
    p95_index = min(len(samples) - 1, int(len(samples) * 0.95))
    return Measurement(
        name=name,
        group=group,
        iterations=len(samples),
        p50_ms=statistics.median(samples) * 1000,
        p95_ms=samples[p95_index] * 1000,
        ops_per_second=len(samples) / sum(samples) if sum(samples) else 0.0,
        note=note,
    )


@dataclass
class Report:
    backend: str
    scale: str
    measurements: list[Measurement] = field(default_factory=list)
    ratios: list[dict[str, object]] = field(default_factory=list)
    context: dict[str, object] = field(default_factory=dict)

    def add(self, measurement: Measurement) -> Measurement:
        self.measurements.append(measurement)
        return measurement

    def ratio(self, label: str, ours: Measurement, other: Measurement, kind: str) -> None:
        value = ours.p50_ms / other.p50_ms if other.p50_ms else float("inf")
        self.ratios.append(
            {
                "workload": label,
                "kind": kind,
                "ours_ms": ours.p50_ms,
                "other_ms": other.p50_ms,
                "ratio": value,
            }
        )

    def write_json(self, path: Path) -> None:
        payload = {
            "backend": self.backend,
            "scale": self.scale,
            "context": self.context,
            "measurements": [asdict(m) for m in self.measurements],
            "ratios": self.ratios,
        }
        path.write_text(json.dumps(payload, indent=2, default=str))
