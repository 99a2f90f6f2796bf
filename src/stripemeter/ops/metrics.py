"""Prometheus metrics of the whole service, on one registry that `/metrics` exposes.

Other modules (writer, reconciler) register their own counters and gauges on
`REGISTRY`. Each process has its own values: with several uvicorn worker processes,
each one answers `/metrics` with its share.

Everything on `REGISTRY` is readable without a key, so no label value here may come
from a client or name a tenant: metric names are not a label (20,000 client-chosen
names once grew /metrics to 7.6 MB, for good), HTTP methods outside the standard set
are counted as `OTHER_LABEL`, routes are templates, `stripemeter_stripe_mode`'s `mode`
is one of four fixed words. Per-tenant figures are read from
Postgres at scrape time and shown only to an admin (see `stripemeter.ops.gauges`).
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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
    "Usage events received by /v1/events/ingest, by outcome (accepted, duplicate, "
    "rejected); all metrics and tenants together.",
    ["outcome"],
    registry=REGISTRY,
)

# The metric name callers pass for rejected events (kept for the callers' sake: no
# metric name becomes a label value any more).
REJECTED_METRIC_LABEL = "_invalid_"
# The label value for anything outside a fixed set (an unknown HTTP method, a tenant's
# metric names beyond the per-scrape cap).
OTHER_LABEL = "other"
INGEST_OUTCOMES = frozenset({"accepted", "duplicate", "rejected"})
HTTP_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


# The labelled series of INGEST_EVENTS, looked up once: `labels()` costs 3.5 µs a call.
_INGEST_SERIES = {
    outcome: INGEST_EVENTS.labels(outcome=outcome) for outcome in (*INGEST_OUTCOMES, OTHER_LABEL)
}


def record_ingest(outcomes: Mapping[tuple[str, str], int]) -> None:
    """Add the event counts of one ingest request, keyed (metric, outcome), by outcome.

    The metric part of the key is ignored: it is client text (see the module doc).
    """
    by_outcome: dict[str, int] = {}
    for (_metric, outcome), count in outcomes.items():
        label = outcome if outcome in INGEST_OUTCOMES else OTHER_LABEL
        by_outcome[label] = by_outcome.get(label, 0) + count
    for outcome, count in by_outcome.items():
        if count:
            _INGEST_SERIES[outcome].inc(count)


def method_label(method: str) -> str:
    """The `method` label of a request: the method if standard, else `OTHER_LABEL`."""
    return method if method in HTTP_METHODS else OTHER_LABEL


STRIPE_MODES = ("live", "test", "emulator", "refused")
STRIPE_MODE = Gauge(
    "stripemeter_stripe_mode",
    "1 for the Stripe mode this process runs in (live, test, emulator, refused), 0 for the others.",
    ["mode"],
    registry=REGISTRY,
)


def record_stripe_mode(mode: str) -> None:
    """Set `stripemeter_stripe_mode`: 1 for `mode`, 0 for every other mode."""
    for each in STRIPE_MODES:
        STRIPE_MODE.labels(mode=each).set(1 if each == mode else 0)
