"""Prometheus metrics of the serving app (prometheus-client), one registry per app.

The hot-path counts (answered requests, rows and latency per endpoint, version and role;
HTTP requests per route and status) are plain integers in a :class:`Tally`, added to on the
event loop without a lock and turned into Prometheus families when scraped: a request costs
a few dict and list operations instead of four locked prometheus-client updates (~4 µs a
request, bench/serving/categorical.py). Everything the app already counts elsewhere
(micro-batch sizes, log queue depth, fsync times) is read at scrape time too. Rare events
(errors, refusals, shadow failures) use prometheus-client's labelled metrics.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class _Scraped:
    """Reads batcher and log counters when Prometheus scrapes."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        state = self.read()
        batch = HistogramMetricFamily(
            "loopml_batch_size",
            "Requests per micro-batched predict call.",
            labels=["version"],
        )
        for version, sizes in state.get("batch_sizes", {}).items():
            buckets, total, count = [], 0, 0
            for bound in _BATCH_BUCKETS:
                buckets.append((str(bound), sum(n for s, n in sizes.items() if s <= bound)))
            buckets.append(("+Inf", sum(sizes.values())))
            for s, n in sizes.items():
                total += s * n
                count += n
            batch.add_metric([str(version)], buckets, total)
        yield batch
        depth = GaugeMetricFamily(
            "loopml_log_queue_depth",
            "Records waiting for the prediction log's writer.",
            labels=["log"],
        )
        fsync = CounterMetricFamily(
            "loopml_log_fsync_seconds",
            "Time spent in fsync by the prediction log.",
            labels=["log"],
        )
        fsyncs = CounterMetricFamily(
            "loopml_log_fsyncs",
            "fsync calls (group commits) of the prediction log.",
            labels=["log"],
        )
        last = GaugeMetricFamily(
            "loopml_log_last_fsync_seconds", "Duration of the latest fsync.", labels=["log"]
        )
        for name, seg in state.get("logs", {}).items():
            depth.add_metric([name], seg.queued)
            fsync.add_metric([name], seg.fsync_seconds)
            fsyncs.add_metric([name], seg.fsyncs)
            last.add_metric([name], seg.last_fsync_seconds)
        yield from (depth, fsync, fsyncs, last)
        loaded = GaugeMetricFamily("loopml_models_loaded", "Model versions loaded and warm.")
        loaded.add_metric([], len(state.get("batch_sizes", {})))
        yield loaded


class Tally:
    """The hot-path counts, exported as counters and a histogram when scraped."""

    def __init__(self) -> None:
        # (endpoint, version, role) -> [requests, rows, seconds, count per latency bucket]
        self.served: dict[tuple[str, int, str], list[Any]] = {}
        self.http: dict[tuple[str, int], int] = {}  # (route template, status) -> requests

    def collect(self) -> Iterable[Metric]:
        labels = ["endpoint", "version", "role"]
        requests = CounterMetricFamily(
            "loopml_predict_requests", "Answered prediction requests.", labels=labels
        )
        rows = CounterMetricFamily("loopml_predict_rows", "Rows predicted.", labels=labels)
        latency = HistogramMetricFamily(
            "loopml_predict_seconds",
            "Time to answer a prediction request (parse, predict, durable log).",
            labels=labels,
        )
        for (endpoint, version, role), tally in list(self.served.items()):
            lv = [endpoint, str(version), role]
            requests.add_metric(lv, tally[0])
            rows.add_metric(lv, tally[1])
            buckets, seen = [], 0
            for bound, n in zip((*_LATENCY_BUCKETS, float("inf")), tally[3:], strict=True):
                seen += n
                buckets.append((floatToGoString(bound), seen))
            latency.add_metric(lv, buckets, tally[2])
        http = CounterMetricFamily(
            "loopml_http_requests", "HTTP requests by route and status.", labels=["route", "status"]
        )
        for (route, status), n in list(self.http.items()):
            http.add_metric([route, str(status)], n)
        yield from (requests, rows, latency, http)


class Metrics:
    """The app's metrics; :meth:`observe` is called once per answered request."""

    def __init__(self, read_state: Callable[[], dict[str, Any]] | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tally = Tally()
        r.register(self.tally)
        self.errors = Counter(
            "loopml_predict_errors",
            "Prediction requests answered with an error, by status.",
            ["endpoint", "version", "role", "status"],
            registry=r,
        )
        self.shadow_errors = Counter(
            "loopml_shadow_errors",
            "Shadow predictions that failed (never seen by callers).",
            ["endpoint", "version"],
            registry=r,
        )
        self.shadow_dropped = Counter(
            "loopml_shadow_dropped",
            "Shadow predictions skipped because the queue was full.",
            ["endpoint"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "loopml_model_load_seconds",
            "Time to load and warm a model version.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.load_failures = Counter(
            "loopml_model_load_failures",
            "Model versions that failed to load.",
            ["version"],
            registry=r,
        )
        self.refused_requests = Counter(
            "loopml_refused_requests",
            "Prediction requests refused with a 4xx, by reason and column (loopml.serve.http.refusals).",
            ["endpoint", "reason", "column"],
            registry=r,
        )
        self.refused_rows = Counter(
            "loopml_refused_rows",
            "Rows of the refused prediction requests whose rows could be counted.",
            ["endpoint", "reason", "column"],
            registry=r,
        )
        if read_state is not None:
            r.register(_Scraped(read_state))

    def observe(self, endpoint: str, version: int, role: str, rows: int, seconds: float) -> None:
        """Count one answered request."""
        key = (endpoint, version, role)
        tally = self.tally.served.get(key)
        if tally is None:
            tally = self.tally.served[key] = [0, 0, 0.0] + [0] * (len(_LATENCY_BUCKETS) + 1)
        tally[0] += 1
        tally[1] += rows
        tally[2] += seconds
        tally[3 + bisect_left(_LATENCY_BUCKETS, seconds)] += 1

    def count_http(self, route: str, status: int) -> None:
        """Count one HTTP request by route template and status."""
        key = (route, status)
        self.tally.http[key] = self.tally.http.get(key, 0) + 1

    def error(self, endpoint: str, version: int | None, role: str | None, status: int) -> None:
        self.errors.labels(
            endpoint, "" if version is None else str(version), role or "", str(status)
        ).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
