"""Prometheus metrics of the whole service, on one registry that `/metrics` exposes.

Other modules (writer, reconciler) register their own counters and gauges on
`REGISTRY`. Each process has its own values: with several uvicorn worker processes,
each one answers `/metrics` with its share.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter(
    "stripemeter_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
    registry=REGISTRY,
)

HTTP_LATENCY = Histogram(
    "stripemeter_http_request_duration_seconds",
    "Time from request start to the end of the answer, by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)

INGEST_EVENTS = Counter(
    "stripemeter_ingest_events",
    "Usage events received by /v1/events/ingest, by metric and outcome "
    "(accepted, duplicate, rejected).",
    ["metric", "outcome"],
    registry=REGISTRY,
)

# Metric names come from clients; rejected events may carry any text, so they are
# grouped under one label value to keep the series count bounded.
REJECTED_METRIC_LABEL = "_invalid_"


def record_ingest(outcomes: Mapping[tuple[str, str], int]) -> None:
    """Add per-(metric, outcome) event counts from one ingest request."""
    for (metric, outcome), count in outcomes.items():
        if count:
            INGEST_EVENTS.labels(metric=metric, outcome=outcome).inc(count)
