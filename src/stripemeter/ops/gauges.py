"""The scrape-time gauges of `/metrics`: the writer's and the reconciler's state, read
from Postgres at each scrape.

Counters (meter events sent, failed passes) count what one process did
(`stripemeter.writer.status`). The gauges that matter to an operator — pending buckets,
whether Stripe keeps failing, drift per metric — are read from the database by
`StateCollector`, so `/metrics` of any API process shows them even when the workers run
in another process. Each figure uses the rule's one definition: "pending" from
`stripemeter.writer.pending`, "latest report per item" and the compared figure from
`stripemeter.reconciler.reports`, drift_pct from `stripemeter.reconciler.drift`.

Without tenant detail (anyone's scrape) every figure is a total over tenants: no
tenant id, metric name, price, customer or Stripe error text. Tenant detail (an admin
key, or `METRICS_TENANT_DETAIL`) labels the same families by `tenant_id` and `metric`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from psycopg.rows import dict_row

from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.ops.metrics import OTHER_LABEL
from stripemeter.reconciler.drift import drift_pct
from stripemeter.reconciler.reports import compared_figure, latest_per_item_sql
from stripemeter.writer.pending import PENDING_SQL
from stripemeter.writer.status import FAILURE_RELEVANCE

log = logging.getLogger("stripemeter.ops.gauges")
_throttled = ThrottledLog(log, interval_s=60)

# The latest report of each item, with what `compared_figure` needs.
LATEST_REPORTS_SQL = latest_per_item_sql(
    "tenant_id, metric, status, drift_abs, final, invoice_quantity, stripe_total,"
    " corrected_quantity",
    "%(t)s::text IS NULL OR tenant_id = %(t)s::text",
)

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
        self, *, tenant_detail: bool = False, tenant_id: str | None = None
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


def _read_state(pool: Any, tenant_id: str | None) -> _State:
    state = _State()
    cutoff = datetime.now(UTC) - FAILURE_RELEVANCE
    with pool.connection(timeout=2.0) as conn:
        conn.execute("SET LOCAL statement_timeout = 2000")
        for tenant, buckets, units in conn.execute(PENDING_SQL, {"t": tenant_id}):
            state.pending.append((str(tenant), float(buckets), float(units)))
        for component, tenant, failures, error_at in conn.execute(
            "SELECT component, tenant_id, consecutive_failures, last_error_at FROM worker_state"
            " WHERE %(t)s::text IS NULL OR tenant_id = %(t)s::text",
            {"t": tenant_id},
        ):
            failing = failures > 0 and error_at is not None and error_at >= cutoff
            state.streaks.append((str(component), str(tenant), float(failures), failing))
        with conn.cursor(row_factory=dict_row) as cur:
            reports = cur.execute(LATEST_REPORTS_SQL, {"t": tenant_id}).fetchall()
        for report in reports:
            key = (str(report["tenant_id"]), str(report["metric"]))
            acc = state.drift.setdefault(key, [0.0, 0.0])
            acc[0] += float(report["drift_abs"])
            acc[1] += float(compared_figure(report))
            status = str(report["status"])
            state.items[(*key, status)] = state.items.get((*key, status), 0) + 1
    return state


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
    d_pct.add_metric([], drift_pct(drift, compared))
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
        d_pct.add_metric([tenant, metric], drift_pct(d, compared))
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
