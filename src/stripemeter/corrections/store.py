"""The `corrections` table: proposals, their history, and what was applied.

One open proposal per tenant x mapping x customer x period (a partial unique index).
`propose` keeps it in step with the reconciler's latest figures:

- the same difference again: the open proposal is returned, no new row;
- a different difference: the open proposal becomes `superseded` and a new one is
  proposed;
- no difference any more (`withdraw`): the open proposal becomes `superseded`.

A proposal whose apply has begun (`apply_started_at`) may already exist in Stripe, so it
is never superseded: it stays open until an apply completes it (`stripemeter.corrections
.apply`), and the reconciler proposes whatever is left after that.

`applied_delta` is what the applied corrections of a period add to its invoice: the
reconciler counts it as billed, so a corrected period stays corrected.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from stripemeter.jsonio import format_decimal, iso

Kind = Literal["invoice_item", "credit_note"]
Status = Literal["proposed", "applied", "superseded"]
STATUSES: tuple[Status, ...] = ("proposed", "applied", "superseded")

COLUMNS = (
    "id, tenant_id, mapping_id, metric, customer_ref, stripe_customer_id, subscription_id,"
    " subscription_item_id, price_id, period_start, period_end, invoice_id, invoice_line_id,"
    " kind, quantity, unit_amount_decimal, amount, currency, description, ledger_quantity,"
    " billed_quantity, status, stripe_object_id, apply_started_at, created_at, applied_at,"
    " superseded_at"
)


@dataclass(frozen=True)
class CorrectionTerms:
    """What a correction is for and what it bills: shared by a proposal and a stored row."""

    tenant_id: str
    metric: str
    customer_ref: str
    stripe_customer_id: str
    subscription_id: str
    subscription_item_id: str
    price_id: str
    period_start: datetime
    period_end: datetime
    invoice_id: str
    invoice_line_id: str | None
    kind: Kind
    quantity: Decimal
    unit_amount_decimal: Decimal | None
    amount: int
    currency: str
    description: str
    ledger_quantity: Decimal
    billed_quantity: Decimal


@dataclass(frozen=True)
class Proposal(CorrectionTerms):
    """What the reconciler asks for one final period (a correction without its state)."""

    mapping_id: UUID


@dataclass(frozen=True)
class Correction(CorrectionTerms):
    """One row of `corrections`: its terms, and where it stands. `mapping_id` is None once
    the mapping it came from is deleted."""

    id: UUID
    mapping_id: UUID | None
    status: Status
    stripe_object_id: str | None
    apply_started_at: datetime | None
    created_at: datetime
    applied_at: datetime | None
    superseded_at: datetime | None

    @property
    def signed_quantity(self) -> Decimal:
        """What the correction adds to the billed quantity (a credit note takes away)."""
        return self.quantity if self.kind == "invoice_item" else -self.quantity

    @property
    def idempotency_key(self) -> str:
        """The Idempotency-Key of its Stripe call: the same for every apply of it."""
        return f"stripemeter-correction-{self.id}"

    def to_json(self) -> dict[str, Any]:
        """The Correction as the API and `--json` show it (camelCase, exact decimals)."""
        return {
            "id": str(self.id),
            "tenantId": self.tenant_id,
            "metric": self.metric,
            "customerRef": self.customer_ref,
            "stripeCustomerId": self.stripe_customer_id,
            "periodStart": iso(self.period_start),
            "periodEnd": iso(self.period_end),
            "invoiceId": self.invoice_id,
            "kind": self.kind,
            "quantity": format_decimal(self.quantity),
            "amount": self.amount,
            "currency": self.currency,
            "description": self.description,
            "status": self.status,
            "stripeObjectId": self.stripe_object_id,
            "createdAt": iso(self.created_at),
            "appliedAt": None if self.applied_at is None else iso(self.applied_at),
        }


def _row(row: dict[str, Any]) -> Correction:
    return Correction(**row)


def _open(
    cur: psycopg.Cursor[dict[str, Any]], mapping_id: UUID, customer_ref: str, start: datetime
) -> Correction | None:
    cur.execute(
        f"SELECT {COLUMNS} FROM corrections WHERE mapping_id = %s AND customer_ref = %s"
        " AND period_start = %s AND status = 'proposed' FOR UPDATE",
        (mapping_id, customer_ref, start),
    )
    found = cur.fetchone()
    return None if found is None else _row(found)


def propose(conn: psycopg.Connection, proposal: Proposal) -> Correction | None:
    """Record `proposal` as the period's open correction (module docstring); return it.

    None when another process's proposal for the item won a race (it is the open one).
    Runs in the caller's transaction; the caller commits.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        current = _open(cur, proposal.mapping_id, proposal.customer_ref, proposal.period_start)
        if current is not None:
            same = (current.kind, current.quantity, current.amount) == (
                proposal.kind,
                proposal.quantity,
                proposal.amount,
            )
            if same or current.apply_started_at is not None:
                return current
            cur.execute(
                "UPDATE corrections SET status = 'superseded', superseded_at = clock_timestamp()"
                " WHERE id = %s",
                (current.id,),
            )
        values = vars(proposal)
        names = ", ".join(values)
        cur.execute(
            f"INSERT INTO corrections ({names}) VALUES ({', '.join(['%s'] * len(values))})"
            f" ON CONFLICT DO NOTHING RETURNING {COLUMNS}",
            tuple(values.values()),
        )
        made = cur.fetchone()
    return None if made is None else _row(made)


def withdraw(
    conn: psycopg.Connection, mapping_id: UUID, customer_ref: str, start: datetime
) -> None:
    """Supersede the period's open proposal: the difference is gone (caller commits)."""
    conn.execute(
        "UPDATE corrections SET status = 'superseded', superseded_at = clock_timestamp()"
        " WHERE mapping_id = %s AND customer_ref = %s AND period_start = %s"
        " AND status = 'proposed' AND apply_started_at IS NULL",
        (mapping_id, customer_ref, start),
    )


def applied_delta(
    conn: psycopg.Connection, mapping_id: UUID, customer_ref: str, start: datetime
) -> tuple[Decimal, Correction | None]:
    """(units the applied corrections add to the period's invoice, the last applied one)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM corrections WHERE mapping_id = %s AND customer_ref = %s"
            " AND period_start = %s AND status = 'applied' ORDER BY applied_at",
            (mapping_id, customer_ref, start),
        )
        applied = [_row(r) for r in cur.fetchall()]
    total = sum((c.signed_quantity for c in applied), Decimal(0))
    return total, (applied[-1] if applied else None)


def get_correction(conn: psycopg.Connection, correction_id: UUID) -> Correction | None:
    """The correction with this id, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {COLUMNS} FROM corrections WHERE id = %s", (correction_id,))
        found = cur.fetchone()
    conn.commit()
    return None if found is None else _row(found)


def list_corrections(
    conn: psycopg.Connection, tenant_id: str, status: Status | None = None
) -> list[Correction]:
    """The tenant's corrections (of one status, or all), newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM corrections WHERE tenant_id = %s"
            " AND (%s::text IS NULL OR status = %s) ORDER BY created_at DESC, id",
            (tenant_id, status, status),
        )
        rows = [_row(r) for r in cur.fetchall()]
    conn.commit()
    return rows


def mark_apply_started(conn: psycopg.Connection, correction_id: UUID) -> None:
    """Note, before the first Stripe call, that the correction may soon exist in Stripe."""
    conn.execute(
        "UPDATE corrections SET apply_started_at = coalesce(apply_started_at, clock_timestamp())"
        " WHERE id = %s AND status = 'proposed'",
        (correction_id,),
    )
    conn.commit()


def mark_applied(
    conn: psycopg.Connection, correction_id: UUID, stripe_object_id: str
) -> tuple[Correction, bool]:
    """(the correction as applied, with its Stripe object; whether this call applied it).

    An already applied one is returned unchanged (a concurrent apply finished first).
    The caller commits.
    """
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "UPDATE corrections SET status = 'applied', stripe_object_id = %s,"
            " applied_at = clock_timestamp() WHERE id = %s AND status = 'proposed'"
            f" RETURNING {COLUMNS}",
            (stripe_object_id, correction_id),
        )
        found = cur.fetchone()
        changed = found is not None
        if found is None:
            cur.execute(f"SELECT {COLUMNS} FROM corrections WHERE id = %s", (correction_id,))
            found = cur.fetchone()
    assert found is not None
    return _row(found), changed
