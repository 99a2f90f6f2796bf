"""What the operator commands compute: `stripemeter reconcile` and `stripemeter summary`.

- `reconcile_tenant` runs the reconciler engine now for one tenant (the same engine
  `POST /v1/reconciliation/run` queues), optionally keeping only the reports of
  periods starting in one month, and `verdict` judges them: `parity` when every
  report is `ok` or `resolved`, `drift` when one is `investigate` or `post_close`.
  `report_line` is a report as the command prints it.
- `tenant_summary` reads, for the current calendar month (UTC), the tenant's usage
  per metric (`ingest.usage.usage_totals`), what the writer has not pushed yet
  (`writer.pending.PENDING_SQL`) and the verdict of the latest report per item
  (`reconciler.reports.latest_reports`), with the reconciler's last error. It asks
  Stripe nothing.

No figure is made up: no reports is verdict `none`, never parity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import psycopg

from stripemeter.config import Settings
from stripemeter.ingest.usage import usage_totals
from stripemeter.jsonio import format_decimal, iso
from stripemeter.reconciler.engine import reconcile
from stripemeter.reconciler.reports import compared_figure, latest_reports, report_tolerance
from stripemeter.stripe.gateway import StripeGateway
from stripemeter.workers import state as worker_state
from stripemeter.writer.pending import PENDING_SQL

Verdict = Literal["parity", "drift", "none"]
PARITY_STATUSES = frozenset({"ok", "resolved"})


def reconcile_tenant(
    conn: psycopg.Connection,
    gateway: StripeGateway,
    settings: Settings,
    tenant_id: str,
    period: tuple[datetime, datetime] | None = None,
) -> list[dict[str, Any]]:
    """Reconcile the tenant's mappings now; this run's reports (of periods starting in
    `period`, when given). Raises ReconciliationError when Stripe cannot be read."""
    reports = reconcile(conn, gateway, settings, tenant_id)
    if period is not None:
        start, end = period
        reports = [r for r in reports if start <= r["period_start"] < end]
    return sorted(reports, key=lambda r: (r["metric"], r["customer_ref"], r["period_start"]))


def verdict(reports: list[dict[str, Any]]) -> Verdict:
    """`parity`, `drift`, or `none` without reports."""
    if not reports:
        return "none"
    return "parity" if all(r["status"] in PARITY_STATUSES for r in reports) else "drift"


def report_line(report: dict[str, Any], epsilon: Decimal) -> str:
    """`api_calls cus_1 2026-11-01..2026-12-01: local 12, stripe 12, drift 0 (0%) ok`.

    drift_pct is shown as a percentage; a report at parity with non-zero drift (within
    `epsilon`, RECONCILIATION_EPSILON) ends with `, within tolerance`.
    """
    start = report["period_start"].astimezone(UTC).date()
    end = report["period_end"].astimezone(UTC).date()
    final = ", invoiced" if report["final"] else ""
    tolerance = report_tolerance(report, epsilon)
    note = f", {tolerance}" if tolerance else ""
    percent = Decimal(report["drift_pct"]) * 100
    return (
        f"{report['metric']} {report['customer_ref']} {start}..{end}: "
        f"local {format_decimal(Decimal(report['local_total']))}, "
        f"stripe {format_decimal(compared_figure(report))}, "
        f"drift {format_decimal(Decimal(report['drift_abs']))} "
        f"({format_decimal(percent)}%) {report['status']}{final}{note}"
    )


def current_month(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding `now`: (its first instant, the next month's)."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    end = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def tenant_summary(conn: psycopg.Connection, tenant_id: str, now: datetime) -> dict[str, Any]:
    """The tenant's month so far, as `stripemeter summary --json` prints it."""
    start, end = current_month(now)
    metrics = [
        row[0]
        for row in conn.execute(
            "SELECT DISTINCT metric FROM usage_buckets WHERE tenant_id = %s"
            " AND hour_start >= %s AND hour_start < %s ORDER BY metric",
            (tenant_id, start, end),
        ).fetchall()
    ]
    usage = []
    for metric in metrics:
        totals = usage_totals(
            conn, tenant_id=tenant_id, metric=metric, customer_ref=None, start=start, end=end
        )
        usage.append(
            {
                "metric": metric,
                "total": format_decimal(totals.total),
                "events": totals.events,
                "max": None if totals.max is None else format_decimal(totals.max),
                "last": None if totals.last is None else format_decimal(totals.last),
            }
        )
    pending = conn.execute(PENDING_SQL, {"t": tenant_id}).fetchone()
    buckets, units = (int(pending[1]), Decimal(pending[2])) if pending else (0, Decimal(0))
    reports = latest_reports(conn, tenant_id, start, end, overlap=True)
    state = worker_state.read_state(conn, "reconciler", tenant_id)
    failing = state is not None and state.consecutive_failures > 0
    conn.commit()
    return {
        "tenantId": str(tenant_id),
        "period": {"start": iso(start), "end": iso(end)},
        "usage": usage,
        "pending": {"buckets": buckets, "units": format_decimal(units)},
        "reconciliation": {
            "verdict": verdict(reports),
            "reports": len(reports),
            "drifting": sum(1 for r in reports if r["status"] not in PARITY_STATUSES),
            "lastReportAt": iso(max(r["checked_at"] for r in reports)) if reports else None,
            "lastError": state.last_error if failing and state is not None else None,
        },
    }


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """`tenant_summary` as the lines `stripemeter summary` prints."""
    period = summary["period"]
    lines = [f"tenant {summary['tenantId']}, {period['start']}..{period['end']}"]
    for row in summary["usage"]:
        lines.append(f"usage {row['metric']}: total {row['total']} ({row['events']} events)")
    if not summary["usage"]:
        lines.append("usage: none this month")
    pending = summary["pending"]
    lines.append(f"pending: {pending['buckets']} bucket(s), {pending['units']} unit(s)")
    rec = summary["reconciliation"]
    if rec["verdict"] == "none":
        lines.append("reconciliation: no report this month")
    else:
        lines.append(
            f"reconciliation: {rec['verdict']} ({rec['reports']} report(s), "
            f"{rec['drifting']} drifting, latest {rec['lastReportAt']})"
        )
    if rec["lastError"]:
        lines.append(f"reconciler failing: {' '.join(str(rec['lastError']).split())}")
    return lines
