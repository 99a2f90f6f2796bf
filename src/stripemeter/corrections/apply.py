"""Applying a correction to Stripe exactly once, and settling the period's report.

`apply_correction`:

1. an applied correction is returned unchanged, without a Stripe call; a superseded one
   is refused (`CorrectionSuperseded`: a newer proposal holds the current figures);
   a dry run returns the proposal unchanged and calls nothing;
2. `apply_started_at` is committed before any Stripe call: from then on the object may
   exist in Stripe, and the reconciler no longer supersedes the proposal;
3. the gateway creates the invoice item (under-billed: on the customer's next invoice of
   the subscription) or the credit note (over-billed: on the finalized invoice, by line
   quantity), first looking for one tagged with this correction, then creating it with
   the Idempotency-Key `stripemeter-correction-<id>`. Stripe failing after storing it
   (a 500 after commit, a lost answer) is therefore harmless: the retry, inside the
   gateway or a later apply, finds or replays the same object;
4. the correction is marked `applied` with the Stripe object id, and the period gets a
   report carrying it, in one transaction: `resolved` when billing now equals the ledger
   (no usage of the period arrived since the proposal), else its drift status, which
   makes the reconciler look at the period again and propose the rest.

No database connection is held across a Stripe call.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from stripemeter.corrections.store import (
    Correction,
    Status,
    get_correction,
    list_corrections,
    mark_applied,
    mark_apply_started,
)
from stripemeter.db.pool import ConnOrPool, borrow
from stripemeter.errors import CorrectionNotFound, CorrectionSuperseded
from stripemeter.periods import to_unix
from stripemeter.reconciler.drift import drift
from stripemeter.stripe.gateway import StripeGateway

log = logging.getLogger("stripemeter.corrections.apply")


def find_correction(
    conn: psycopg.Connection, tenant_id: str | None, correction_id: UUID
) -> Correction:
    """The correction, if it is `tenant_id`'s (None: any tenant's); else CorrectionNotFound.

    Another tenant's correction is "not found" too: its existence is not theirs to learn.
    """
    found = get_correction(conn, correction_id)
    if found is None or (tenant_id is not None and found.tenant_id != tenant_id):
        raise CorrectionNotFound(f"no correction {correction_id}")
    return found


def _create_in_stripe(gateway: StripeGateway, correction: Correction) -> str:
    tag = str(correction.id)
    whole = correction.quantity == correction.quantity.to_integral_value()
    if correction.kind == "invoice_item":
        per_unit = correction.unit_amount_decimal is not None and whole
        return gateway.create_invoice_item(
            correction_tag=tag,
            customer_id=correction.stripe_customer_id,
            subscription_id=correction.subscription_id,
            currency=correction.currency,
            description=correction.description,
            period=(to_unix(correction.period_start), to_unix(correction.period_end)),
            quantity=int(correction.quantity),
            unit_amount_decimal=correction.unit_amount_decimal if per_unit else None,
            amount=correction.amount,
            idempotency_key=correction.idempotency_key,
        )
    if not correction.invoice_line_id:
        raise CorrectionSuperseded(
            f"correction {correction.id} names no invoice line to credit; reconcile again"
        )
    by_quantity = correction.unit_amount_decimal is not None and whole
    return gateway.create_credit_note(
        correction_tag=tag,
        invoice_id=correction.invoice_id,
        line_id=correction.invoice_line_id,
        quantity=int(correction.quantity) if by_quantity else None,
        amount=correction.amount,
        idempotency_key=correction.idempotency_key,
    )


def _record_resolution(conn: psycopg.Connection, correction: Correction) -> None:
    """A `resolved` report for the corrected period: the latest report's figures, billed
    = invoice + every applied correction, with this correction and its Stripe object."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT tenant_id, mapping_id, metric, customer_ref, subscription_item_id,"
            " period_start, period_end, local_total, stripe_total, invoice_id,"
            " invoice_quantity, final, status FROM reconciliation_reports"
            " WHERE mapping_id = %s AND customer_ref = %s AND period_start = %s"
            " ORDER BY created_at DESC LIMIT 1",
            (correction.mapping_id, correction.customer_ref, correction.period_start),
        )
        latest = cur.fetchone()
        if latest is None:
            return
        cur.execute(
            "SELECT coalesce(sum(CASE WHEN kind = 'invoice_item' THEN quantity"
            " ELSE -quantity END), 0) AS delta FROM corrections WHERE mapping_id = %s"
            " AND customer_ref = %s AND period_start = %s AND status = 'applied'",
            (correction.mapping_id, correction.customer_ref, correction.period_start),
        )
        delta_row = cur.fetchone()
        delta = Decimal(delta_row["delta"]) if delta_row else Decimal(0)
        invoiced = latest["invoice_quantity"]
        if invoiced is None:
            invoiced = correction.billed_quantity
        corrected = Decimal(invoiced) + delta
        d = drift(Decimal(latest["local_total"]), corrected)
        # Resolved when billing now equals the ledger the proposal was made from and no
        # usage of the period arrived since. Otherwise the period keeps a drift status
        # and, having no open proposal, is reconciled again: the rest gets proposed.
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM usage_buckets WHERE tenant_id = %s AND metric = %s"
            " AND customer_ref = %s AND hour_start >= %s AND hour_start < %s"
            " AND updated_at > %s) AS changed",
            (
                correction.tenant_id,
                correction.metric,
                correction.customer_ref,
                correction.period_start,
                correction.period_end,
                correction.created_at,
            ),
        )
        changed = cur.fetchone()
        settled = corrected == correction.ledger_quantity and not (changed and changed["changed"])
        if settled:
            status = "resolved"
        elif latest["status"] in ("post_close", "investigate"):
            status = latest["status"]
        else:
            status = "investigate"
        cur.execute(
            "INSERT INTO reconciliation_reports (tenant_id, mapping_id, metric, customer_ref,"
            " subscription_item_id, period_start, period_end, local_total, stripe_total,"
            " invoice_id, invoice_quantity, drift_abs, drift_pct, status, final,"
            " correction_id, stripe_object_id, corrected_quantity)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                latest["tenant_id"],
                latest["mapping_id"],
                latest["metric"],
                latest["customer_ref"],
                latest["subscription_item_id"],
                latest["period_start"],
                latest["period_end"],
                latest["local_total"],
                latest["stripe_total"],
                latest["invoice_id"],
                latest["invoice_quantity"],
                d.drift_abs,
                d.drift_pct,
                status,
                latest["final"],
                correction.id,
                correction.stripe_object_id,
                corrected,
            ),
        )


def apply_correction(
    db: ConnOrPool,
    gateway: StripeGateway | None,
    correction_id: UUID,
    *,
    tenant_id: str | None,
    dry_run: bool = False,
) -> Correction:
    """Apply one correction (module docstring); return it as it stands afterwards.

    A dry run (which needs no gateway) returns it unchanged. Raises CorrectionNotFound
    (not this tenant's, or no such id), CorrectionSuperseded, and the gateway's errors
    (StripeUnavailable: nothing is lost, apply again).
    """
    with borrow(db) as conn:
        correction = find_correction(conn, tenant_id, correction_id)
    if correction.status == "applied" or dry_run:
        return correction
    if gateway is None:
        raise ValueError("applying a correction needs a Stripe gateway")
    if correction.status == "superseded":
        raise CorrectionSuperseded(
            f"correction {correction.id} was superseded by a newer proposal for the same "
            "period; list the proposed corrections and apply that one"
        )
    with borrow(db) as conn:
        mark_apply_started(conn, correction.id)
    object_id = _create_in_stripe(gateway, correction)
    with borrow(db) as conn:
        applied, changed = mark_applied(conn, correction.id, object_id)
        if changed:
            _record_resolution(conn, applied)
        conn.commit()
    log.info(
        "correction %s applied: %s %s for %s %s",
        applied.id,
        applied.kind,
        object_id,
        applied.metric,
        applied.customer_ref,
    )
    return applied


def apply_all(
    db: ConnOrPool,
    gateway: StripeGateway | None,
    tenant_id: str,
    *,
    dry_run: bool = False,
    status: Status = "proposed",
) -> list[Correction]:
    """Apply every `status` (proposed) correction of the tenant, oldest first."""
    with borrow(db) as conn:
        pending = list_corrections(conn, tenant_id, status)
    return [
        apply_correction(db, gateway, c.id, tenant_id=tenant_id, dry_run=dry_run)
        for c in reversed(pending)
    ]
