"""Metrics and readiness for the writer and the reconciler.

Counters (meter events sent, failed passes) count what this process did. The gauges
that matter to an operator — pending buckets, whether Stripe keeps failing, drift per
metric — are read from Postgres at scrape time by `StateCollector`, so `/metrics` of
any API process shows them even when the workers run in another process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from stripemeter.metrics import REGISTRY

log = logging.getLogger("stripemeter.writer")

EVENTS_SENT = Counter(
    "stripemeter_writer_meter_events",
    "Meter events the writer got Stripe to hold, by outcome (accepted, duplicate = "
    "identifier already held after a retry).",
    ["outcome"],
    registry=REGISTRY,
)
PUSH_FAILURES = Counter(
    "stripemeter_writer_failed_passes",
    "Writer passes that stopped on a Stripe error (per tenant).",
    registry=REGISTRY,
)

# A writer error streak older than this no longer makes readiness degraded on its own
# (no writer is running any more to clear it).
FAILURE_RELEVANCE = timedelta(minutes=10)

PENDING_SQL = """
SELECT m.tenant_id,
       count(*) AS buckets,
       coalesce(sum(CASE m.aggregation
           WHEN 'sum' THEN b.total - coalesce(w.pushed_value, 0)
           WHEN 'max' THEN abs(coalesce(b.max_value, 0) - coalesce(w.pushed_value, 0))
           ELSE abs(coalesce(b.last_value, 0) - coalesce(w.pushed_value, 0)) END), 0) AS units
FROM price_mappings m
JOIN usage_buckets b ON b.tenant_id = m.tenant_id AND b.metric = m.metric
LEFT JOIN write_log w ON w.mapping_id = m.id AND w.customer_ref = b.customer_ref
     AND w.hour_start = b.hour_start
WHERE m.active AND (%(t)s::uuid IS NULL OR m.tenant_id = %(t)s::uuid)
  AND (w.mapping_id IS NULL OR (w.status = 'pushed' AND w.source_value IS DISTINCT FROM
       floor(coalesce(CASE m.aggregation WHEN 'sum' THEN b.total WHEN 'max' THEN b.max_value
                      ELSE b.last_value END, 0))))
GROUP BY m.tenant_id
"""

LATEST_REPORTS_SQL = """
SELECT DISTINCT ON (mapping_id, customer_ref, period_start)
       tenant_id, metric, status, drift_abs, drift_pct,
       CASE WHEN final AND invoice_quantity IS NOT NULL THEN invoice_quantity
            ELSE stripe_total END AS compared
FROM reconciliation_reports
ORDER BY mapping_id, customer_ref, period_start, created_at DESC
"""


ConnectionSource = Callable[[], Any]


class StateCollector(Collector):
    """Gauges read from Postgres on each scrape (one query each, bounded labels)."""

    def __init__(self) -> None:
        self.pool_source: ConnectionSource | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the writer and reconciliation gauges; `..._state_up 0` if unreadable."""
        up = GaugeMetricFamily(
            "stripemeter_worker_state_up",
            "1 when the writer/reconciler state could be read from the database.",
        )
        pool = self.pool_source() if self.pool_source is not None else None
        if pool is None:
            up.add_metric([], 0)
            yield up
            return
        try:
            families = self._read(pool)
        except Exception as exc:  # a scrape must not fail because the database is down
            log.warning("metrics: cannot read worker state: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self, pool: Any) -> list[GaugeMetricFamily]:
        pending_b = GaugeMetricFamily(
            "stripemeter_writer_pending_buckets",
            "Hour buckets whose usage Stripe does not hold yet.",
            labels=["tenant_id"],
        )
        pending_u = GaugeMetricFamily(
            "stripemeter_writer_pending_units",
            "Usage units not yet pushed to Stripe.",
            labels=["tenant_id"],
        )
        failing = GaugeMetricFamily(
            "stripemeter_writer_stripe_failing",
            "1 while the writer's passes keep failing against Stripe (readiness degraded).",
            labels=["tenant_id"],
        )
        streak = GaugeMetricFamily(
            "stripemeter_worker_consecutive_failures",
            "Consecutive failed passes, by component and tenant.",
            labels=["component", "tenant_id"],
        )
        drift_abs = GaugeMetricFamily(
            "stripemeter_reconciliation_drift_abs",
            "Sum of |local - Stripe| over the latest report of each item and period.",
            labels=["tenant_id", "metric"],
        )
        drift_pct = GaugeMetricFamily(
            "stripemeter_reconciliation_drift_pct",
            "drift_abs / Stripe total over the latest reports (1 when Stripe is 0).",
            labels=["tenant_id", "metric"],
        )
        items = GaugeMetricFamily(
            "stripemeter_reconciliation_items",
            "Latest reports by status.",
            labels=["tenant_id", "metric", "status"],
        )
        with pool.connection(timeout=2.0) as conn:
            conn.execute("SET LOCAL statement_timeout = 2000")
            for tenant, buckets, units in conn.execute(PENDING_SQL, {"t": None}):
                pending_b.add_metric([str(tenant)], float(buckets))
                pending_u.add_metric([str(tenant)], float(units))
            cutoff = datetime.now(UTC) - FAILURE_RELEVANCE
            for component, tenant, failures, error_at in conn.execute(
                "SELECT component, tenant_id, consecutive_failures, last_error_at FROM worker_state"
            ):
                streak.add_metric([component, str(tenant)], float(failures))
                if component == "writer":
                    bad = failures > 0 and error_at is not None and error_at >= cutoff
                    failing.add_metric([str(tenant)], 1.0 if bad else 0.0)
            sums: dict[tuple[str, str], list[float]] = {}
            counts: dict[tuple[str, str, str], int] = {}
            for tenant, metric, status, d_abs, _pct, compared in conn.execute(LATEST_REPORTS_SQL):
                key = (str(tenant), str(metric))
                acc = sums.setdefault(key, [0.0, 0.0])
                acc[0] += float(d_abs)
                acc[1] += float(compared)
                counts[(*key, str(status))] = counts.get((*key, str(status)), 0) + 1
        for key, (d, compared) in sums.items():
            drift_abs.add_metric(list(key), d)
            drift_pct.add_metric(list(key), d / compared if compared else (1.0 if d else 0.0))
        for ckey, n in counts.items():
            items.add_metric(list(ckey), float(n))
        return [pending_b, pending_u, failing, streak, drift_abs, drift_pct, items]


STATE_COLLECTOR = StateCollector()
REGISTRY.register(STATE_COLLECTOR)


def use_pool_for_metrics(pool_source: ConnectionSource) -> None:
    """Read the scrape-time gauges through `pool_source()` (None while there is no pool)."""
    STATE_COLLECTOR.pool_source = pool_source


def writer_health(pool: Any) -> tuple[str, str, str]:
    """Readiness of the Stripe side: `degraded` while the writer keeps failing on Stripe."""
    try:
        with pool.connection(timeout=2.0) as conn:
            rows = conn.execute(
                "SELECT tenant_id, consecutive_failures, last_error, last_error_at"
                " FROM worker_state WHERE component = 'writer' AND consecutive_failures > 0"
                " AND last_error_at >= now() - %s ORDER BY last_error_at DESC",
                (FAILURE_RELEVANCE,),
            ).fetchall()
    except Exception as exc:
        return "stripe_writer", "unhealthy", f"cannot read writer state: {exc}"
    if not rows:
        return "stripe_writer", "ok", "no recent Stripe failures"
    tenant, failures, error, _ = rows[0]
    return (
        "stripe_writer",
        "degraded",
        f"Stripe failing for {len(rows)} tenant(s); tenant {tenant}: {failures} failed "
        f"pass(es) in a row, last error: {error}",
    )
