"""The report's data from the service's own PostgreSQL: nothing but what it stores.

Per latest reconciliation report (`stripemeter.reconciler.reports.latest_per_item_sql`,
the one definition of "latest per item"): the ledger's hourly buckets of the period
(`usage_buckets`), what the writer sent to Stripe's meter for each hour (`meter_pushes`
that Stripe accepted), the hours parked after close (`push_state.status = post_close`),
the late hours (events received after the writer had sent a later hour: out of order, from
`events.received_at`: wall times on both sides, so test clocks do not matter), and the
period's corrections (`corrections`, superseded ones left out).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from stripemeter.reconciler.engine import REPORT_COLUMNS
from stripemeter.reconciler.reports import latest_per_item_sql
from stripemeter.report.model import Correction, Hour, Section, section_verdict

# Which usage_buckets column is an hour's value, per aggregation (as GET /v1/usage).
BUCKET_VALUE = {"sum": "total", "count": "event_count", "max": "max_value", "last": "last_value"}
# Aggregations whose meter adds the pushes up; the others keep the latest one.
ADDITIVE = ("sum", "count")


def tenant_sections(
    conn: psycopg.Connection,
    tenant_id: str,
    epsilon: Decimal,
    window: tuple[datetime, datetime] | None = None,
) -> list[Section]:
    """One section per latest report of the tenant, for periods starting in `window`
    (`[start, end)`; None: every period), ordered by customer then period."""
    where = "tenant_id = %(t)s"
    params: dict[str, object] = {"t": tenant_id}
    if window is not None:
        where += " AND period_start >= %(s)s AND period_start < %(e)s"
        params |= {"s": window[0], "e": window[1]}
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(latest_per_item_sql(REPORT_COLUMNS, where), params)
        reports = sorted(
            cur.fetchall(), key=lambda r: (r["customer_ref"], r["period_start"], r["metric"])
        )
        cur.execute(
            "SELECT id::text AS id, metric, customer_ref, period_start, kind, quantity,"
            " amount, currency, status, stripe_object_id FROM corrections"
            " WHERE tenant_id = %s AND status <> 'superseded' ORDER BY created_at, id",
            (tenant_id,),
        )
        corrections = cur.fetchall()
    sections = []
    for report in reports:
        section = _section(conn, report, corrections)
        section.verdict, section.cause = section_verdict(section, epsilon)
        sections.append(section)
    return sections


def _section(
    conn: psycopg.Connection, report: dict[str, Any], corrections: list[dict[str, Any]]
) -> Section:
    tenant, metric, ref = report["tenant_id"], report["metric"], report["customer_ref"]
    start, end = report["period_start"], report["period_end"]
    aggregation = _aggregation(conn, report)
    fixes = [
        Correction(
            id=c["id"],
            kind=c["kind"],
            quantity=c["quantity"],
            amount=int(c["amount"]),
            currency=c["currency"],
            status=c["status"],
            stripe_object_id=c["stripe_object_id"],
        )
        for c in corrections
        if (c["metric"], c["customer_ref"], c["period_start"]) == (metric, ref, start)
    ]
    return Section(
        title=f"{ref} / {metric}: {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC",
        tenant_id=tenant,
        metric=metric,
        customer_ref=ref,
        aggregation=aggregation,
        period_start=start,
        period_end=end,
        ledger_total=report["local_total"],
        stripe_total=report["stripe_total"],
        reconciler_status=report["status"],
        final=bool(report["final"]),
        invoice_id=report["invoice_id"],
        invoice_quantity=report["invoice_quantity"],
        hours=hours(conn, tenant, metric, ref, (start, end), aggregation),
        corrections=fixes,
    )


def _aggregation(conn: psycopg.Connection, report: dict[str, Any]) -> str:
    """The aggregation of the report's series: its mapping's, else what the writer
    recorded (the mapping may be deleted), else `sum`."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT aggregation FROM price_mappings WHERE id = %s"
            " UNION ALL (SELECT aggregation FROM push_state WHERE tenant_id = %s"
            " AND metric = %s AND customer_ref = %s ORDER BY updated_at DESC LIMIT 1)",
            (report["mapping_id"], report["tenant_id"], report["metric"], report["customer_ref"]),
        )
        row = cur.fetchone()
    return str(row[0]) if row else "sum"


def hours(
    conn: psycopg.Connection,
    tenant_id: str,
    metric: str,
    customer_ref: str,
    period: tuple[datetime, datetime],
    aggregation: str,
) -> list[Hour]:
    """The hours of `period` that have usage or pushes, oldest first."""
    column = BUCKET_VALUE.get(aggregation, "total")
    key = (tenant_id, metric, customer_ref, period[0], period[1])
    series = "tenant_id = %s AND metric = %s AND customer_ref = %s"
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT hour_start, coalesce({column}, 0) FROM usage_buckets"
            f" WHERE {series} AND hour_start >= %s AND hour_start < %s",
            key,
        )
        ledger: dict[datetime, Decimal] = {h: Decimal(v) for h, v in cur.fetchall()}
        cur.execute(
            "SELECT hour_start, value, sent_at FROM meter_pushes"
            f" WHERE {series} AND hour_start >= %s AND hour_start < %s AND status = 'sent'"
            " ORDER BY seq",
            key,
        )
        sent: dict[datetime, Decimal] = defaultdict(Decimal)
        first_sent: dict[datetime, datetime] = {}
        for hour, value, sent_at in cur.fetchall():
            sent[hour] = sent[hour] + value if aggregation in ADDITIVE else Decimal(value)
            if sent_at is not None:
                first_sent[hour] = min(first_sent.get(hour, sent_at), sent_at)
        cur.execute(
            "SELECT DISTINCT hour_start FROM push_state"
            f" WHERE {series} AND hour_start >= %s AND hour_start < %s AND status = 'post_close'",
            key,
        )
        parked = {row[0] for row in cur.fetchall()}
        cur.execute(
            "SELECT date_trunc('hour', ts, 'UTC'), max(received_at) FROM events"
            f" WHERE {series} AND ts >= %s AND ts < %s GROUP BY 1",
            key,
        )
        received: dict[datetime, datetime] = dict(cur.fetchall())
    found = []
    for hour in sorted(set(ledger) | set(sent) | parked):
        later_sent = [t for h, t in first_sent.items() if h > hour]
        arrived = received.get(hour)
        late = arrived is not None and bool(later_sent) and arrived > min(later_sent)
        found.append(
            Hour(
                start=hour,
                ledger=ledger.get(hour, Decimal(0)),
                stripe=sent.get(hour, Decimal(0)),
                late=late and hour not in parked,
                post_close=hour in parked,
            )
        )
    return found
