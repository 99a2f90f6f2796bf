"""The reconciler: compare local totals with Stripe per billing period, and say so.

For each active mapping and each customer with a subscription item on the mapped
price, the periods come from Stripe: the item's current period, and the periods of
the subscription's invoice lines for the price. For each period:

- local  = the mapping's aggregate (`Aggregation.period_sql`) of the buckets whose
  `hour_start` is in `[start, end)` (the writer pushes each bucket at its hour, so
  Stripe places it in the same period);
- stripe = the meter event summary for the same window, minute-aligned;
- for a period whose invoice is finalized, also the invoice line quantity. That is
  what the customer pays, so for a final period the figure compared with local is the
  invoice quantity (the meter summary is kept in `stripe_total` for diagnosis).

drift_abs and drift_pct as `stripemeter.reconciler.drift` defines them, of the whole
units for `sum` (Stripe bills whole units; the period's final remainder, < 1 unit, is
never pushed: `local_total` keeps the exact figure, drift does not count it). Status: `ok`
when the period is at parity by the seed's one tolerance rule (`drift.within_tolerance`:
drift_abs == 0 or drift_pct <= RECONCILIATION_EPSILON, for every aggregation kind; the
report then says "within tolerance" when drift_abs is not 0, `reports.report_json`);
`post_close` when a final period differs and the writer parked late usage for it;
`resolved` when a period previously flagged agrees again, or agrees once its applied
corrections are counted (the report then carries the last one and its Stripe object);
`investigate` otherwise. Stripe or the database failing raises — a
failed read never becomes a zero-drift report.

A report is written only when something changed: when the period's status and figures
(`CHANGE_COLUMNS`) equal its latest report's, that report's `checked_at` is moved to now
(a heartbeat) and it is returned as this run's report; otherwise a new report is
inserted. So the history holds one row per change, and `checked_at` says how fresh the
latest verdict is.

Corrections after close (`stripemeter.corrections`): for a final period, what the
customer pays is the invoice line quantity plus the corrections applied to it. When
that differs from the whole units of the ledger, the report's transaction also proposes
a correction of the difference (an invoice item when under-billed, a credit note when
over-billed), priced from the price's terms; when it no longer differs, an open
proposal is withdrawn. This holds for a period `ok` within tolerance too: the tolerance
says the reconciliation is not alarming, not that the customer may be billed other than
the ledger, so the exact whole-unit difference is still proposed (a correction that
prices to 0 is withdrawn, as for any period). A final period whose drift has no
correction yet is reconciled again on every run until it has one. With
CORRECTIONS_AUTO_APPLY the reconciler applies what it proposed at once, after the report
is written.

No database connection is held across a Stripe call. Given a pool, every step borrows
a connection for its reads, returns it, asks Stripe, then borrows again to write the
report: a Stripe that hangs (each call is bounded by `STRIPE_TIMEOUT_S`) holds no
connection, so it cannot take the pool from ingest and reads. Given a connection, the
same steps run on it (tests and one-shot callers that own their connection).
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from stripemeter import clocks
from stripemeter.config import Settings
from stripemeter.corrections import store as corrections
from stripemeter.corrections.apply import apply_all
from stripemeter.corrections.pricing import correction_amount
from stripemeter.db.pool import ConnOrPool, borrow
from stripemeter.errors import GatewayError, ReconciliationError, StripeUnavailable
from stripemeter.mappings.bindings import bound_customers, stripe_customer_for
from stripemeter.mappings.meters import Mapping, active_mappings, ensure_meter
from stripemeter.periods import ceil_minute, from_unix
from stripemeter.reconciler.drift import drift, tolerance_note, within_tolerance
from stripemeter.stripe.client import ClientOrGateway, gateway_for
from stripemeter.stripe.gateway import (
    InvoicePeriod,
    ItemInfo,
    MeterInfo,
    PriceTerms,
    StripeGateway,
)
from stripemeter.workers import state as worker_state

log = logging.getLogger("stripemeter.reconciler.engine")

REPORT_COLUMNS = (
    "id, tenant_id, mapping_id, metric, customer_ref, subscription_item_id, period_start,"
    " period_end, local_total, stripe_total, invoice_id, invoice_quantity, drift_abs,"
    " drift_pct, status, final, created_at, correction_id, stripe_object_id,"
    " corrected_quantity, checked_at"
)
# What a report says: a run finding all of these equal to the latest report's writes none.
CHANGE_COLUMNS = (
    "subscription_item_id",
    "period_end",
    "local_total",
    "stripe_total",
    "invoice_id",
    "invoice_quantity",
    "drift_abs",
    "drift_pct",
    "status",
    "final",
    "correction_id",
    "stripe_object_id",
    "corrected_quantity",
)


def reconcile(
    conn_or_pool: ConnOrPool,
    client: ClientOrGateway,
    settings: Settings,
    tenant_id: str | None = None,
) -> list[dict[str, Any]]:
    """Reconcile every active mapping (of one tenant or all); return this run's reports
    (each new, or the unchanged latest one with its checked_at moved).

    Raises ReconciliationError when Stripe cannot be read (after the gateway's
    retries); the failure is recorded per tenant for readiness and the status API.
    Connections are borrowed per step, never across a Stripe call (module docstring).
    """
    gateway = gateway_for(client, settings)
    reports: list[dict[str, Any]] = []
    with borrow(conn_or_pool) as conn:
        mappings = active_mappings(conn, tenant_id)
        conn.commit()
    tenants = sorted({m.tenant_id for m in mappings}, key=str)
    failures: list[str] = []
    outage = False
    for tenant in tenants:
        try:
            for mapping in (m for m in mappings if m.tenant_id == tenant):
                reports.extend(_reconcile_mapping(conn_or_pool, gateway, settings, mapping))
            if settings.CORRECTIONS_AUTO_APPLY:
                reports.extend(_auto_apply(conn_or_pool, gateway, tenant))
        except GatewayError as exc:
            with borrow(conn_or_pool) as conn:
                conn.rollback()
                worker_state.record_failure(
                    conn, "reconciler", tenant, str(exc), outage=isinstance(exc, StripeUnavailable)
                )
                conn.commit()
            failures.append(f"cannot read Stripe for tenant {tenant}: {exc}")
            outage = outage or isinstance(exc, StripeUnavailable)
            continue
        with borrow(conn_or_pool) as conn:
            worker_state.record_success(conn, "reconciler", tenant)
            conn.commit()
    if failures:
        raise ReconciliationError("; ".join(failures), refused=not outage)
    return reports


def _customers(db: ConnOrPool, gateway: StripeGateway, mapping: Mapping) -> list[str]:
    """Customers with local usage of the metric, plus the mapped item's own customer.

    The latter is reconciled even without local usage, so usage Stripe holds that we
    never sent still shows up as drift.
    """
    with borrow(db) as conn:
        rows = conn.execute(
            "SELECT DISTINCT customer_ref FROM usage_buckets WHERE tenant_id = %s AND metric = %s"
            " ORDER BY 1",
            (mapping.tenant_id, mapping.metric),
        ).fetchall()
        conn.commit()
    customers = [str(r[0]) for r in rows]
    if mapping.subscription_item_id:
        owner = gateway.item_customer(mapping.subscription_item_id)
        with borrow(db) as conn:
            bound = bound_customers(conn, mapping.tenant_id)
            conn.commit()
        # Only a customer bound to this tenant: another tenant's never enters its reports.
        owner_refs = [ref for ref, cus in bound.items() if cus == owner]
        for ref in owner_refs:
            if ref not in customers:
                customers.append(ref)
    return customers


def _reconcile_mapping(
    db: ConnOrPool, gateway: StripeGateway, settings: Settings, mapping: Mapping
) -> list[dict[str, Any]]:
    meter = ensure_meter(db, gateway, mapping)
    made: list[dict[str, Any]] = []
    for customer_ref in _customers(db, gateway, mapping):
        with borrow(db) as conn:
            customer_id = stripe_customer_for(conn, mapping.tenant_id, customer_ref)
            conn.commit()
        if customer_id is None:
            continue  # not bound to the tenant: nothing of it is pushed or reported
        item = gateway.find_item(customer_id, mapping.price_id, mapping.subscription_item_id)
        if item is None:
            continue
        with borrow(db) as conn:
            frozen = clocks.observe(conn, gateway, mapping.tenant_id, customer_id)
        # Stripe's summaries reach the customer's now; a wall-clock customer's last
        # minutes may still arrive, so five minutes more.
        horizon = clocks.customer_now(frozen) + (0 if frozen is not None else 300)
        # An ended subscription has no open period: its last one is on its final invoice.
        periods: dict[int, tuple[int, InvoicePeriod | None]] = (
            {} if item.ended else {item.period_start: (item.period_end, None)}
        )
        for line in gateway.invoice_periods(item.subscription_id, mapping.price_id):
            if line.start >= item.period_start and not item.ended:
                continue  # the current period is billed in arrears, later
            known = periods.get(line.start)
            if known is None or known[1] is None or (line.finalized and not known[1].finalized):
                periods[line.start] = (line.end, line)
        for start, (end, inv) in sorted(periods.items()):
            final = inv is not None and inv.finalized
            with borrow(db) as conn:
                current = final and _final_report_is_current(
                    conn, mapping, customer_ref, start, end
                )
            if current:
                continue
            report = _reconcile_period(
                db,
                gateway,
                settings,
                mapping,
                meter,
                customer_ref,
                item,
                start,
                end,
                inv,
                min(end, max(horizon, start) + 60),
            )
            made.append(report)
    return made


def _auto_apply(db: ConnOrPool, gateway: StripeGateway, tenant_id: str) -> list[dict[str, Any]]:
    """CORRECTIONS_AUTO_APPLY: apply every proposed correction of the tenant (also those
    an earlier run could not finish); the periods' reports afterwards."""
    reports: list[dict[str, Any]] = []
    for applied in apply_all(db, gateway, tenant_id):
        with borrow(db) as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                f"SELECT {REPORT_COLUMNS} FROM reconciliation_reports WHERE mapping_id = %s"
                " AND customer_ref = %s AND period_start = %s ORDER BY created_at DESC LIMIT 1",
                (applied.mapping_id, applied.customer_ref, applied.period_start),
            )
            report = cur.fetchone()
            conn.commit()
        if report is not None:
            reports.append(report)
    return reports


def _final_report_is_current(
    conn: psycopg.Connection, mapping: Mapping, customer_ref: str, start: int, end: int
) -> bool:
    """A final report exists, no bucket of the period changed since it was made, and,
    when it found drift, the drift has a proposed correction waiting to be applied."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM reconciliation_reports r"
        " WHERE r.mapping_id = %(m)s AND r.customer_ref = %(c)s AND r.period_start = %(s)s"
        "  AND r.final AND r.checked_at >= coalesce((SELECT max(b.updated_at)"
        "   FROM usage_buckets b WHERE b.tenant_id = %(t)s AND b.metric = %(metric)s"
        "   AND b.customer_ref = %(c)s AND b.hour_start >= %(s)s AND b.hour_start < %(e)s),"
        "   '-infinity')"
        "  AND (r.status IN ('ok', 'resolved') OR EXISTS (SELECT 1 FROM corrections k"
        "   WHERE k.mapping_id = %(m)s AND k.customer_ref = %(c)s AND k.period_start = %(s)s"
        "   AND k.status = 'proposed')))",
        {
            "m": mapping.id,
            "c": customer_ref,
            "s": from_unix(start),
            "e": from_unix(end),
            "t": mapping.tenant_id,
            "metric": mapping.metric,
        },
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def local_value(
    conn: psycopg.Connection, mapping: Mapping, customer_ref: str, start: datetime, end: datetime
) -> tuple[Decimal, Decimal]:
    """(exact local aggregate, whole units the writer pushes for it) over `[start, end)`."""
    params = {
        "t": mapping.tenant_id,
        "metric": mapping.metric,
        "c": customer_ref,
        "s": start,
        "e": end,
    }
    window = (
        "tenant_id = %(t)s AND metric = %(metric)s AND customer_ref = %(c)s"
        " AND hour_start >= %(s)s AND hour_start < %(e)s"
    )
    sql = mapping.kind.period_sql.format(window=window)
    row = conn.execute(sql, params).fetchone()
    conn.commit()
    if row is None:
        return Decimal(0), Decimal(0)
    return Decimal(row[0]), Decimal(row[1])


def _parked_units(
    conn: psycopg.Connection, mapping: Mapping, customer_ref: str, start: datetime, end: datetime
) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM push_state WHERE tenant_id = %s AND metric = %s"
        " AND customer_ref = %s AND status = 'post_close' AND hour_start >= %s"
        " AND hour_start < %s)",
        (mapping.tenant_id, mapping.metric, customer_ref, start, end),
    ).fetchone()
    conn.commit()
    return bool(row and row[0])


def _latest_report(
    conn: psycopg.Connection, mapping: Mapping, customer_ref: str, start: datetime
) -> dict[str, Any] | None:
    """The latest report of the period, locked until the caller's transaction ends (two
    runs of one period then write one report, not two copies)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {REPORT_COLUMNS} FROM reconciliation_reports WHERE mapping_id = %s"
            " AND customer_ref = %s AND period_start = %s ORDER BY created_at DESC LIMIT 1"
            " FOR UPDATE",
            (mapping.id, customer_ref, start),
        )
        return cur.fetchone()


def _reconcile_period(
    db: ConnOrPool,
    gateway: StripeGateway,
    settings: Settings,
    mapping: Mapping,
    meter: MeterInfo,
    customer_ref: str,
    item: ItemInfo,
    start: int,
    end: int,
    inv: InvoicePeriod | None,
    summary_end: int,
) -> dict[str, Any]:
    """Compare one period (local read, then Stripe, then the report written)."""
    start_dt, end_dt = from_unix(start), from_unix(end)
    with borrow(db) as conn:
        local, local_whole = local_value(conn, mapping, customer_ref, start_dt, end_dt)
    stripe_total = gateway.meter_total(
        meter.meter_id, item.customer_id, ceil_minute(start), ceil_minute(max(summary_end, start))
    )
    # A final period may need a correction (priced by the price's terms, which the
    # gateway keeps: one call per price, not per period).
    terms = gateway.price_terms(mapping.price_id) if inv is not None and inv.finalized else None
    with borrow(db) as conn:
        return _write_report(
            conn,
            settings,
            mapping,
            customer_ref,
            item,
            start_dt,
            end_dt,
            inv,
            local,
            local_whole,
            stripe_total,
            terms,
        )


def _write_report(
    conn: psycopg.Connection,
    settings: Settings,
    mapping: Mapping,
    customer_ref: str,
    item: ItemInfo,
    start_dt: datetime,
    end_dt: datetime,
    inv: InvoicePeriod | None,
    local: Decimal,
    local_whole: Decimal,
    stripe_total: Decimal,
    terms: PriceTerms | None,
) -> dict[str, Any]:
    """Status the period from figures already read and insert its report, proposing or
    withdrawing its correction (no Stripe)."""
    final = inv is not None and inv.finalized
    compared = inv.quantity if (inv is not None and final) else stripe_total
    applied, last_applied = (
        corrections.applied_delta(conn, mapping.id, customer_ref, start_dt)
        if final
        else (Decimal(0), None)
    )
    billed = compared + applied
    latest = _latest_report(conn, mapping, customer_ref, start_dt)
    # Stripe bills whole units; a kind whose remainder the writer holds back (sum: the
    # period's last fraction, < 1 unit) is billed right at floor(period total).
    d = drift(local_whole if mapping.kind.holds_back_fractions else local, billed)
    if within_tolerance(d, settings.RECONCILIATION_EPSILON):
        status = "ok"
        if last_applied is not None or (latest is not None and latest["status"]) in (
            "investigate",
            "post_close",
        ):
            status = "resolved"
    elif final and _parked_units(conn, mapping, customer_ref, start_dt, end_dt):
        status = "post_close"
    else:
        status = "investigate"
    says = {
        "subscription_item_id": item.item_id,
        "period_end": end_dt,
        "local_total": local,
        "stripe_total": stripe_total,
        "invoice_id": inv.invoice_id if inv else None,
        "invoice_quantity": inv.quantity if inv else None,
        "drift_abs": d.drift_abs,
        "drift_pct": d.drift_pct,
        "status": status,
        "final": final,
        "correction_id": last_applied.id if last_applied else None,
        "stripe_object_id": last_applied.stripe_object_id if last_applied else None,
        "corrected_quantity": billed if last_applied else None,
    }
    with conn.cursor(row_factory=dict_row) as cur:
        if latest is not None and all(latest[c] == says[c] for c in CHANGE_COLUMNS):
            cur.execute(
                "UPDATE reconciliation_reports SET checked_at = now() WHERE id = %s"
                f" RETURNING {REPORT_COLUMNS}",
                (latest["id"],),
            )
        else:
            cur.execute(
                "INSERT INTO reconciliation_reports (tenant_id, mapping_id, metric,"
                f" customer_ref, period_start, {', '.join(CHANGE_COLUMNS)})"
                f" VALUES ({', '.join(['%s'] * (5 + len(CHANGE_COLUMNS)))})"
                f" RETURNING {REPORT_COLUMNS}",
                (
                    mapping.tenant_id,
                    mapping.id,
                    mapping.metric,
                    customer_ref,
                    start_dt,
                    *(says[c] for c in CHANGE_COLUMNS),
                ),
            )
        report = cur.fetchone()
    if final and inv is not None:
        if local_whole != billed and terms is not None:
            _propose(conn, mapping, customer_ref, item, inv, local_whole, billed, terms)
        elif local_whole == billed:
            corrections.withdraw(conn, mapping.id, customer_ref, start_dt)
    conn.commit()
    assert report is not None
    if tolerance_note(d, settings.RECONCILIATION_EPSILON) is not None:
        log.info(
            "reconciler: %s %s period %s drift %s within tolerance (drift_pct %s <= %s)",
            mapping.metric,
            customer_ref,
            start_dt,
            d.drift_abs,
            d.drift_pct,
            settings.RECONCILIATION_EPSILON,
        )
    if status == "investigate":
        log.warning(
            "reconciler: %s %s period %s drift %s",
            mapping.metric,
            customer_ref,
            start_dt,
            d.drift_abs,
        )
    return report


def _propose(
    conn: psycopg.Connection,
    mapping: Mapping,
    customer_ref: str,
    item: ItemInfo,
    inv: InvoicePeriod,
    ledger: Decimal,
    billed: Decimal,
    terms: PriceTerms,
) -> None:
    """Propose correcting `billed` whole units to `ledger` for the final period (the
    same difference again changes nothing; another one supersedes the open proposal)."""
    under = ledger > billed
    quantity = abs(ledger - billed)
    amount = correction_amount(terms, int(ledger), int(billed))
    if amount == 0:  # e.g. units inside a transform_quantity pack: nothing to bill or credit
        corrections.withdraw(conn, mapping.id, customer_ref, from_unix(inv.start))
        return
    start, end = from_unix(inv.start), from_unix(inv.end)
    window = f"{start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC"
    if under:
        description = (
            f"{mapping.metric}: {quantity} unit(s) used {window} and not billed on invoice "
            f"{inv.invoice_id} (stripemeter correction)"
        )
    else:
        description = (
            f"{mapping.metric}: {quantity} unit(s) billed in excess for {window} on invoice "
            f"{inv.invoice_id} (stripemeter correction)"
        )
    corrections.propose(
        conn,
        corrections.Proposal(
            tenant_id=mapping.tenant_id,
            mapping_id=mapping.id,
            metric=mapping.metric,
            customer_ref=customer_ref,
            stripe_customer_id=item.customer_id,
            subscription_id=item.subscription_id,
            subscription_item_id=item.item_id,
            price_id=mapping.price_id,
            period_start=start,
            period_end=end,
            invoice_id=inv.invoice_id,
            invoice_line_id=inv.line_id or None,
            kind="invoice_item" if under else "credit_note",
            quantity=quantity,
            unit_amount_decimal=terms.unit_amount if terms.plain_per_unit else None,
            amount=amount,
            currency=terms.currency,
            description=description,
            ledger_quantity=ledger,
            billed_quantity=billed,
        ),
    )
