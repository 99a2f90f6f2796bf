"""Metrics and readiness for the writer and the reconciler.

Counters (meter events sent, failed passes) count what this process did. The gauges
that matter to an operator — pending buckets, whether Stripe keeps failing, drift per
metric — are read from Postgres at scrape time by `StateCollector`, so `/metrics` of
any API process shows them even when the workers run in another process.

Without tenant detail (anyone's scrape) every figure is a total over tenants: no
tenant id, metric name, price, customer or Stripe error text. Tenant detail (an admin
key, or `METRICS_TENANT_DETAIL`) labels the same families by `tenant_id` and `metric`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.ops.metrics import OTHER_LABEL, REGISTRY

log = logging.getLogger("stripemeter.writer.passes")
_throttled = ThrottledLog(log, interval_s=60)

EVENTS_SENT = Counter(
    "stripemeter_writer_meter_events",
    "Meter events the writer got Stripe to hold, by outcome (accepted, duplicate = "
    "identifier already held after a retry).",
    ["outcome"],
    registry=REGISTRY,
)
PUSH_FAILURES = Counter(
    "stripemeter_writer_failed_passes",
    "Writer passes that stopped on a Stripe error (all tenants together).",
    registry=REGISTRY,
)

# A writer error streak older than this no longer makes readiness degraded on its own
# (no writer is running any more to clear it).
FAILURE_RELEVANCE = timedelta(minutes=10)

# "Pending", the one definition: buckets the outbox does not cover yet, plus series whose
# outbox rows are not sent yet (a bucket in both counts twice; units never do).
PENDING_SQL = """
WITH uncovered AS (
    SELECT m.tenant_id,
           count(*) AS buckets,
           coalesce(sum(CASE m.aggregation
               WHEN 'sum' THEN b.total - coalesce(s.covered, 0)
               WHEN 'max' THEN abs(coalesce(b.max_value, 0) - coalesce(s.covered, 0))
               ELSE abs(coalesce(b.last_value, 0) - coalesce(s.covered, 0)) END), 0) AS units
    FROM price_mappings m
    JOIN usage_buckets b ON b.tenant_id = m.tenant_id AND b.metric = m.metric
    LEFT JOIN push_state s ON s.tenant_id = b.tenant_id AND s.metric = b.metric
         AND s.customer_ref = b.customer_ref AND s.hour_start = b.hour_start
         AND s.event_name = m.meter_event_name
    WHERE m.active AND (%(t)s::uuid IS NULL OR m.tenant_id = %(t)s::uuid)
      AND (s.tenant_id IS NULL OR (s.status = 'active' AND s.source_value IS DISTINCT FROM
           floor(coalesce(CASE m.aggregation WHEN 'sum' THEN b.total
                          WHEN 'max' THEN b.max_value ELSE b.last_value END, 0))))
    GROUP BY m.tenant_id
), unsent AS (
    SELECT tenant_id,
           count(DISTINCT (metric, customer_ref, hour_start, event_name)) AS buckets,
           coalesce(sum(value), 0) AS units
    FROM meter_pushes
    WHERE status = 'pending' AND (%(t)s::uuid IS NULL OR tenant_id = %(t)s::uuid)
    GROUP BY tenant_id
)
SELECT tenant_id, sum(buckets)::bigint AS buckets, sum(units) AS units
FROM (SELECT * FROM uncovered UNION ALL SELECT * FROM unsent) AS both_kinds
GROUP BY tenant_id
"""

LATEST_REPORTS_SQL = """
SELECT DISTINCT ON (mapping_id, customer_ref, period_start)
       tenant_id, metric, status, drift_abs, drift_pct,
       CASE WHEN final AND invoice_quantity IS NOT NULL THEN invoice_quantity
            ELSE stripe_total END AS compared
FROM reconciliation_reports
WHERE %(t)s::uuid IS NULL OR tenant_id = %(t)s::uuid
ORDER BY mapping_id, customer_ref, period_start, created_at DESC
"""


ConnectionSource = Callable[[], Any]

# A scrape lists at most this many metric names per tenant; the rest are summed under
# `OTHER_LABEL`, so mappings cannot grow /metrics without bound.
MAX_METRIC_LABELS = 50


class StateCollector:
    """Gauges read from Postgres on each scrape (a few queries, bounded labels).

    `collect(tenant_detail=False)` gives what anyone may read: totals over every
    tenant, no tenant id, metric name or error text. `tenant_detail=True` adds
    `tenant_id` (and `metric`) labels to the same families, limited to `tenant_id`
    when one is given; `/metrics` asks for it only for an admin key or when
    `METRICS_TENANT_DETAIL` is on.
    """

    def __init__(self) -> None:
        self.pool_source: ConnectionSource | None = None

    def collect(
        self, *, tenant_detail: bool = False, tenant_id: UUID | None = None
    ) -> list[GaugeMetricFamily]:
        """The writer and reconciliation gauges; only `..._state_up 0` if unreadable."""
        up = GaugeMetricFamily(
            "stripemeter_worker_state_up",
            "1 when the writer/reconciler state could be read from the database.",
        )
        pool = self.pool_source() if self.pool_source is not None else None
        if pool is None:
            up.add_metric([], 0)
            return [up]
        try:
            state = _read_state(pool, tenant_id if tenant_detail else None)
        except Exception as exc:  # a scrape must not fail because the database is down
            _throttled.warning("state-unreadable", "metrics: cannot read worker state: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *(_detail(state) if tenant_detail else _totals(state))]


@dataclass
class _State:
    """What one scrape read, per tenant (and metric)."""

    pending: list[tuple[str, float, float]] = field(default_factory=list)
    streaks: list[tuple[str, str, float, bool]] = field(default_factory=list)
    drift: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    items: dict[tuple[str, str, str], int] = field(default_factory=dict)


def _read_state(pool: Any, tenant_id: UUID | None) -> _State:
    state = _State()
    cutoff = datetime.now(UTC) - FAILURE_RELEVANCE
    with pool.connection(timeout=2.0) as conn:
        conn.execute("SET LOCAL statement_timeout = 2000")
        for tenant, buckets, units in conn.execute(PENDING_SQL, {"t": tenant_id}):
            state.pending.append((str(tenant), float(buckets), float(units)))
        for component, tenant, failures, error_at in conn.execute(
            "SELECT component, tenant_id, consecutive_failures, last_error_at FROM worker_state"
            " WHERE %(t)s::uuid IS NULL OR tenant_id = %(t)s::uuid",
            {"t": tenant_id},
        ):
            failing = failures > 0 and error_at is not None and error_at >= cutoff
            state.streaks.append((str(component), str(tenant), float(failures), failing))
        for tenant, metric, status, d_abs, _pct, compared in conn.execute(
            LATEST_REPORTS_SQL, {"t": tenant_id}
        ):
            key = (str(tenant), str(metric))
            acc = state.drift.setdefault(key, [0.0, 0.0])
            acc[0] += float(d_abs)
            acc[1] += float(compared)
            state.items[(*key, str(status))] = state.items.get((*key, str(status)), 0) + 1
    return state


def _pct(drift: float, compared: float) -> float:
    return drift / compared if compared else (1.0 if drift else 0.0)


def _families(labels: list[str], metric_label: bool) -> list[GaugeMetricFamily]:
    with_metric = [*labels, "metric"] if metric_label else labels
    return [
        GaugeMetricFamily(
            "stripemeter_writer_pending_buckets",
            "Hour buckets whose usage Stripe does not hold yet.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "stripemeter_writer_pending_units",
            "Usage units not yet pushed to Stripe.",
            labels=labels,
        ),
        GaugeMetricFamily(
            "stripemeter_writer_stripe_failing",
            "1 while the writer's passes keep failing against Stripe (readiness degraded).",
            labels=labels,
        ),
        GaugeMetricFamily(
            "stripemeter_writer_failing_tenants",
            "Tenants whose writer passes keep failing against Stripe.",
        ),
        GaugeMetricFamily(
            "stripemeter_worker_consecutive_failures",
            "Consecutive failed passes, by component (the worst tenant, without detail).",
            labels=["component", *labels],
        ),
        GaugeMetricFamily(
            "stripemeter_reconciliation_drift_abs",
            "Sum of |local - Stripe| over the latest report of each item and period.",
            labels=with_metric,
        ),
        GaugeMetricFamily(
            "stripemeter_reconciliation_drift_pct",
            "drift_abs / Stripe total over the latest reports (1 when Stripe is 0).",
            labels=with_metric,
        ),
        GaugeMetricFamily(
            "stripemeter_reconciliation_items",
            "Latest reports by status.",
            labels=[*with_metric, "status"],
        ),
    ]


def _totals(state: _State) -> list[GaugeMetricFamily]:
    """Every figure summed over tenants: nothing that names or tells tenants apart."""
    families = _families([], metric_label=False)
    buckets, units, failing, count, streak, d_abs, d_pct, items = families
    buckets.add_metric([], sum(p[1] for p in state.pending))
    units.add_metric([], sum(p[2] for p in state.pending))
    failing_tenants = {t for c, t, _, bad in state.streaks if c == "writer" and bad}
    failing.add_metric([], 1.0 if failing_tenants else 0.0)
    count.add_metric([], float(len(failing_tenants)))
    worst: dict[str, float] = {}
    for component, _, failures, _ in state.streaks:
        worst[component] = max(worst.get(component, 0.0), failures)
    for component, failures in sorted(worst.items()):
        streak.add_metric([component], failures)
    drift = sum(v[0] for v in state.drift.values())
    compared = sum(v[1] for v in state.drift.values())
    d_abs.add_metric([], drift)
    d_pct.add_metric([], _pct(drift, compared))
    by_status: dict[str, int] = {}
    for (_, _, status), n in state.items.items():
        by_status[status] = by_status.get(status, 0) + n
    for status, n in sorted(by_status.items()):
        items.add_metric([status], float(n))
    return families


def _detail(state: _State) -> list[GaugeMetricFamily]:
    """Per-tenant figures (tenant_id label), metric names capped per tenant."""
    families = _families(["tenant_id"], metric_label=True)
    buckets, units, failing, count, streak, d_abs, d_pct, items = families
    for tenant, n_buckets, n_units in state.pending:
        buckets.add_metric([tenant], n_buckets)
        units.add_metric([tenant], n_units)
    bad_tenants = 0
    for component, tenant, failures, bad in state.streaks:
        streak.add_metric([component, tenant], failures)
        if component == "writer":
            failing.add_metric([tenant], 1.0 if bad else 0.0)
            bad_tenants += bad
    count.add_metric([], float(bad_tenants))
    label = _metric_labels(state.drift)
    drift: dict[tuple[str, str], list[float]] = {}
    for key, (d, compared) in state.drift.items():
        acc = drift.setdefault((key[0], label[key]), [0.0, 0.0])
        acc[0] += d
        acc[1] += compared
    for (tenant, metric), (d, compared) in sorted(drift.items()):
        d_abs.add_metric([tenant, metric], d)
        d_pct.add_metric([tenant, metric], _pct(d, compared))
    statuses: dict[tuple[str, str, str], int] = {}
    for (tenant, metric, status), n in state.items.items():
        capped = (tenant, label[(tenant, metric)], status)
        statuses[capped] = statuses.get(capped, 0) + n
    for ckey, n in sorted(statuses.items()):
        items.add_metric(list(ckey), float(n))
    return families


def _metric_labels(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The label of each (tenant, metric): the metric for a tenant's first
    `MAX_METRIC_LABELS` names in sorted order, `OTHER_LABEL` for the rest."""
    kept: dict[str, int] = {}
    labels: dict[tuple[str, str], str] = {}
    for tenant, metric in sorted(keys):
        n = kept.get(tenant, 0)
        labels[(tenant, metric)] = metric if n < MAX_METRIC_LABELS else OTHER_LABEL
        kept[tenant] = n + 1
    return labels


STATE_COLLECTOR = StateCollector()


def use_pool_for_metrics(pool_source: ConnectionSource) -> None:
    """Read the scrape-time gauges through `pool_source()` (None while there is no pool)."""
    STATE_COLLECTOR.pool_source = pool_source


def writer_health(pool: Any) -> tuple[str, str, str]:
    """Readiness of the Stripe side: `degraded` while the writer keeps failing on Stripe.

    The detail says how many tenants fail, never which, nor Stripe's error text
    (`writer_health_detail` gives those to an admin).
    """
    try:
        with pool.connection(timeout=2.0) as conn:
            row = conn.execute(
                "SELECT count(*) FROM worker_state WHERE component = 'writer'"
                " AND consecutive_failures > 0 AND last_error_at >= now() - %s",
                (FAILURE_RELEVANCE,),
            ).fetchone()
    except Exception as exc:
        return "stripe_writer", "unhealthy", f"cannot read writer state: {type(exc).__name__}"
    failing = int(row[0]) if row else 0
    if not failing:
        return "stripe_writer", "ok", "no recent Stripe failures"
    return "stripe_writer", "degraded", f"Stripe failing for {failing} tenant(s)"


def writer_health_detail(pool: Any, tenant_id: UUID | None) -> tuple[str, dict[str, Any]]:
    """Which tenants (all, or just `tenant_id`) the writer keeps failing for, and why."""
    with pool.connection(timeout=2.0) as conn:
        rows = conn.execute(
            "SELECT tenant_id, consecutive_failures, last_error, last_error_at"
            " FROM worker_state WHERE component = 'writer' AND consecutive_failures > 0"
            " AND last_error_at >= now() - %s AND (%s::uuid IS NULL OR tenant_id = %s::uuid)"
            " ORDER BY last_error_at DESC",
            (FAILURE_RELEVANCE, tenant_id, tenant_id),
        ).fetchall()
    tenants = [
        {
            "tenantId": str(tenant),
            "consecutiveFailures": failures,
            "lastError": error,
            "lastErrorAt": error_at.isoformat() if error_at else None,
        }
        for tenant, failures, error, error_at in rows
    ]
    extra: dict[str, Any] = {"tenants": tenants}
    if tenants:
        first = tenants[0]
        extra["detail"] = (
            f"Stripe failing for {len(tenants)} tenant(s); tenant {first['tenantId']}: "
            f"{first['consecutiveFailures']} failed pass(es) in a row, last error: "
            f"{first['lastError']}"
        )
    return "stripe_writer", extra
