"""Prometheus text-format metrics of one service process: request counts, errors, latency and batch-size histograms."""

from __future__ import annotations

import bisect
import time
from typing import Iterable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped)) + "}"


class Counter:
    def __init__(self, name: str, help_text: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help_text, labels
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {value:g}"


class Gauge(Counter):
    def set(self, value: float, *labels: str) -> None:
        self.values[labels] = float(value)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {value:g}"


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()):
        self.name, self.help, self.buckets, self.label_names = name, help_text, buckets, labels
        self.series: dict[tuple[str, ...], list] = {}  # labels -> [bucket counts..., sum, count]

    def observe(self, value: float, *labels: str) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * len(self.buckets) + [0.0, 0]
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            series[index] += 1
        series[-2] += value
        series[-1] += 1

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        names = self.label_names + ("le",)
        for labels, series in sorted(self.series.items()):
            running = 0
            for bound, count in zip(self.buckets, series):
                running += count
                yield f"{self.name}_bucket{_labels(names, labels + (f'{bound:g}',))} {running}"
            yield f"{self.name}_bucket{_labels(names, labels + ('+Inf',))} {series[-1]}"
            yield f"{self.name}_sum{_labels(self.label_names, labels)} {series[-2]:.6f}"
            yield f"{self.name}_count{_labels(self.label_names, labels)} {series[-1]}"


class ServiceMetrics:
    """Every metric the service exports; each worker process keeps its own (a scrape reaches one worker)."""

    def __init__(self, model_version: str, task: str):
        self.started = time.time()
        self.info = Gauge("duet_service_info", "Model and task this process serves (value is always 1).",
                          ("model_version", "task"))
        self.info.set(1, model_version, task)
        self.requests = Counter("duet_http_requests_total", "HTTP requests answered, by endpoint and status.",
                                ("endpoint", "status"))
        self.errors = Counter("duet_http_errors_total", "HTTP requests answered with a 4xx or 5xx status.",
                              ("endpoint", "status"))
        self.latency = Histogram("duet_http_request_duration_seconds", "Time from request to last response byte.",
                                 LATENCY_BUCKETS, ("endpoint",))
        self.batch_size = Histogram("duet_generate_batch_size", "Generate requests per generator forward.",
                                    BATCH_BUCKETS)
        self.forward = Histogram("duet_generate_batch_seconds", "Time to validate, generate and encode one batch.",
                                 LATENCY_BUCKETS)
        self.queue = Gauge("duet_generate_pending", "Generate requests admitted and not yet answered.")
        self.queue.set(0)
        self.rejected = Counter("duet_generate_rejected_total", "Generate requests refused before generation.",
                                ("reason",))

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.inc(endpoint, code)
        if status >= 400:
            self.errors.inc(endpoint, code)
        self.latency.observe(seconds, endpoint)

    def render(self) -> str:
        uptime = Gauge("duet_process_uptime_seconds", "Seconds since this process started.")
        uptime.set(time.time() - self.started)
        parts = (self.info, uptime, self.requests, self.errors, self.latency, self.batch_size, self.forward,
                 self.queue, self.rejected)
        return "\n".join(line for metric in parts for line in metric.render()) + "\n"
