"""Summaries of reconciliation reports: per metric and overall, as JSON or CSV.

Each (mapping, customer, period) counts once, with its latest report
(`latest_per_item_sql`, also what the `/metrics` gauges read). Its Stripe figure is the
invoice line quantity when the period's invoice is final (what the customer pays), else
the meter summary (`compared_figure`). drift_abs adds the per-item absolute drifts
(drifts of different customers never cancel out); drift_pct is
`stripemeter.reconciler.drift`'s of those sums.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from stripemeter.jsonio import format_decimal, iso
from stripemeter.reconciler.drift import drift, rounded_pct, tolerance_note
from stripemeter.reconciler.engine import REPORT_COLUMNS

CSV_COLUMNS = ("metric", "local", "stripe", "drift_abs", "drift_pct", "items")


@dataclass
class Totals:
    """Running totals of a group of reports."""

    local: Decimal = Decimal(0)
    stripe: Decimal = Decimal(0)
    drift_abs: Decimal = Decimal(0)
    items: int = 0

    def add(self, report: dict[str, Any]) -> None:
        """Count one report."""
        self.local += Decimal(report["local_total"])
        self.stripe += compared_figure(report)
        self.drift_abs += Decimal(report["drift_abs"])
        self.items += 1

    @property
    def drift_pct(self) -> Decimal:
        """drift_abs relative to stripe (`stripemeter.reconciler.drift`)."""
        return rounded_pct(self.drift_abs, self.stripe)


def compared_figure(report: dict[str, Any]) -> Decimal:
    """The Stripe figure a report compares local with: when final, the invoice quantity
    plus the applied corrections (`corrected_quantity`), or the invoice quantity."""
    if report["final"] and report.get("corrected_quantity") is not None:
        return Decimal(report["corrected_quantity"])
    if report["final"] and report["invoice_quantity"] is not None:
        return Decimal(report["invoice_quantity"])
    return Decimal(report["stripe_total"])


def latest_per_item_sql(columns: str, where: str) -> str:
    """SQL selecting `columns` of the latest report of each (mapping, customer, period)
    among the reports matching `where` (the one definition of "latest per item")."""
    return (
        f"SELECT DISTINCT ON (mapping_id, customer_ref, period_start) {columns}"
        f" FROM reconciliation_reports WHERE {where}"
        " ORDER BY mapping_id, customer_ref, period_start, created_at DESC"
    )


def latest_reports(
    conn: psycopg.Connection,
    tenant_id: str,
    start: datetime,
    end: datetime,
    *,
    overlap: bool,
) -> list[dict[str, Any]]:
    """The latest report of each (mapping, customer, period) in the window.

    `overlap=False`: periods starting in `[start, end)` (the month form);
    `overlap=True`: periods overlapping `[start, end)` (the from/to form).
    """
    where = (
        "period_end > %(s)s AND period_start < %(e)s"
        if overlap
        else "period_start >= %(s)s AND period_start < %(e)s"
    )
    with conn.cursor(row_factory=dict_row) as cur:
        latest = latest_per_item_sql(REPORT_COLUMNS, f"tenant_id = %(t)s AND {where}")
        cur.execute(
            f"SELECT * FROM ({latest}) latest ORDER BY metric, customer_ref, period_start",
            {"t": tenant_id, "s": start, "e": end},
        )
        return cur.fetchall()


def number(value: Decimal) -> int | float | str:
    """A decimal as a JSON number when that is exact, else as a string."""
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) == value:
        return as_float
    return format(value.normalize(), "f")


def summarize(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """`{"perMetric": [...], "overall": {...}}` for the reports."""
    per_metric: dict[str, Totals] = {}
    overall = Totals()
    for report in reports:
        per_metric.setdefault(str(report["metric"]), Totals()).add(report)
        overall.add(report)
    rows = []
    for metric in sorted(per_metric):
        t = per_metric[metric]
        rows.append({"metric": metric, **_figures(t), "items": t.items})
    return {
        "perMetric": rows,
        "overall": {**_figures(overall), "metrics": len(per_metric), "items": overall.items},
    }


def _figures(t: Totals) -> dict[str, Any]:
    return {
        "local": number(t.local),
        "stripe": number(t.stripe),
        "drift_abs": number(t.drift_abs),
        "drift_pct": float(t.drift_pct),
    }


def to_csv(summary: dict[str, Any]) -> str:
    """One line per metric and a final `TOTAL` line."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in summary["perMetric"]:
        writer.writerow([row[c] for c in CSV_COLUMNS])
    overall = summary["overall"]
    writer.writerow(["TOTAL", *[overall[c] for c in CSV_COLUMNS[1:]]])
    return out.getvalue()


def report_tolerance(report: dict[str, Any], epsilon: Decimal) -> str | None:
    """ "within tolerance" for a report at parity (ok, resolved) whose drift is not 0 but
    within `epsilon` (`drift.tolerance_note`, on the exact quotient), else None."""
    if report["status"] not in ("ok", "resolved"):
        return None
    return tolerance_note(drift(Decimal(report["local_total"]), compared_figure(report)), epsilon)


def report_json(report: dict[str, Any], epsilon: Decimal) -> dict[str, Any]:
    """A report row as the API shows it (decimals as exact strings); `epsilon` is
    RECONCILIATION_EPSILON, for its `tolerance` note."""

    def dec(value: Any) -> str | None:
        return None if value is None else format_decimal(Decimal(value))

    return {
        "id": str(report["id"]),
        "tenantId": str(report["tenant_id"]),
        "mappingId": None if report["mapping_id"] is None else str(report["mapping_id"]),
        "metric": report["metric"],
        "customerRef": report["customer_ref"],
        "subscriptionItemId": report["subscription_item_id"],
        "periodStart": iso(report["period_start"]),
        "periodEnd": iso(report["period_end"]),
        "local": dec(report["local_total"]),
        "stripe": dec(report["stripe_total"]),
        "invoiceId": report["invoice_id"],
        "invoiceQuantity": dec(report["invoice_quantity"]),
        "compared": dec(compared_figure(report)),
        "drift_abs": dec(report["drift_abs"]),
        "drift_pct": dec(report["drift_pct"]),
        "status": report["status"],
        "tolerance": report_tolerance(report, epsilon),
        "final": report["final"],
        "correctionId": None if report["correction_id"] is None else str(report["correction_id"]),
        "stripeObjectId": report["stripe_object_id"],
        "createdAt": iso(report["created_at"]),
        "checkedAt": iso(report["checked_at"]),
    }
