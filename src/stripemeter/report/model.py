"""The report model: what one parity report shows, independent of where it came from.

A `Report` has one `Section` per (customer, billing period) of a tenant's metric: its
hourly ledger beside what the writer sent to Stripe's meter, the billing period and the
grace window, the invoice line, the corrections applied, and the period's drift. The
verdict rules live here once (`section_verdict`, `overall_verdict`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from stripemeter.jsonio import format_decimal, iso
from stripemeter.reconciler.drift import drift, within_tolerance

PARITY, PENDING, DRIFT, ERROR = "parity", "pending", "drift", "error"
# Stripe finalizes a renewal invoice's draft about an hour after the period ends; usage
# that arrives in that hour is still billed (the writer flushes it before finalization).
GRACE_WINDOW = timedelta(hours=1)
# Reconciler statuses (reconciliation_reports.status) that mean "the period is settled".
SETTLED_STATUSES = ("ok", "resolved")


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


@dataclass(frozen=True)
class Hour:
    """One hour of usage: the ledger's bucket and what the writer sent for it.

    `late`: units of the hour were received after the writer had already sent a later
    hour: out-of-order arrivals. `post_close`: the hour's bucket changed
    after its period's invoice was finalized, so the writer did not push it (a
    correction bills it).
    """

    start: datetime
    ledger: Decimal
    stripe: Decimal
    late: bool = False
    post_close: bool = False

    def to_json(self) -> dict[str, Any]:
        """As `report.json` has it (decimals as exact strings)."""
        return {
            "hour": iso(self.start),
            "ledger": format_decimal(self.ledger),
            "stripe": format_decimal(self.stripe),
            "late": self.late,
            "postClose": self.post_close,
        }


@dataclass(frozen=True)
class Correction:
    """A correction after close of the section's period."""

    id: str
    kind: str  # invoice_item (bills more) | credit_note (credits)
    quantity: Decimal
    amount: int
    currency: str
    status: str
    stripe_object_id: str | None

    @property
    def signed_quantity(self) -> Decimal:
        """The quantity as it changes what the period bills (a credit note takes away)."""
        return self.quantity if self.kind == "invoice_item" else -self.quantity

    def to_json(self) -> dict[str, Any]:
        """As `report.json` has it."""
        return {
            "id": self.id,
            "kind": self.kind,
            "quantity": format_decimal(self.quantity),
            "amount": self.amount,
            "currency": self.currency,
            "status": self.status,
            "stripeObjectId": self.stripe_object_id,
        }


@dataclass
class Section:
    """One customer's billing period: the chart, the invoice line, corrections, drift.

    `stripe_total` is Stripe's meter summary of the period as the reconciler last read
    it; `invoice_quantity` the finalized invoice's line (None while the period is open);
    `billed` what the customer pays for it: the line plus the applied corrections.
    """

    title: str
    tenant_id: str
    metric: str
    customer_ref: str
    aggregation: str
    period_start: datetime
    period_end: datetime
    ledger_total: Decimal
    stripe_total: Decimal
    reconciler_status: str
    final: bool
    invoice_id: str | None = None
    invoice_quantity: Decimal | None = None
    invoice_amount: int | None = None
    currency: str | None = None
    hours: list[Hour] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    verdict: str = ""  # set by the builder (section_verdict) or by the demo's validate
    cause: str | None = None

    @property
    def grace_end(self) -> datetime:
        """The end of the grace window after the period."""
        return self.period_end + GRACE_WINDOW

    @property
    def applied_corrections(self) -> Decimal:
        """The applied corrections' signed quantities."""
        return sum(
            (c.signed_quantity for c in self.corrections if c.status == "applied"), Decimal(0)
        )

    @property
    def billed(self) -> Decimal:
        """The invoice quantity plus applied corrections; the meter for an open period."""
        if self.invoice_quantity is None:
            return self.stripe_total
        return self.invoice_quantity + self.applied_corrections

    def to_json(self, epsilon: Decimal) -> dict[str, Any]:
        """As `report.json` has it."""
        d = drift(self.ledger_total, self.billed)
        return {
            "title": self.title,
            "tenantId": self.tenant_id,
            "metric": self.metric,
            "customerRef": self.customer_ref,
            "aggregation": self.aggregation,
            "periodStart": iso(self.period_start),
            "periodEnd": iso(self.period_end),
            "graceEnd": iso(self.grace_end),
            "final": self.final,
            "reconcilerStatus": self.reconciler_status,
            "invoice": None
            if self.invoice_id is None
            else {
                "id": self.invoice_id,
                "quantity": _dec(self.invoice_quantity),
                "amount": self.invoice_amount,
                "currency": self.currency,
            },
            "ledger": format_decimal(self.ledger_total),
            "stripe": format_decimal(self.stripe_total),
            "corrections": [c.to_json() for c in self.corrections],
            "appliedCorrections": format_decimal(self.applied_corrections),
            "billed": format_decimal(self.billed),
            "driftAbs": format_decimal(d.drift_abs),
            "driftPct": format_decimal(d.drift_pct),
            "withinTolerance": within_tolerance(d, epsilon),
            "verdict": self.verdict,
            "cause": self.cause,
            "hours": [h.to_json() for h in self.hours],
            "lateHours": sum(1 for h in self.hours if h.late),
            "postCloseHours": sum(1 for h in self.hours if h.post_close),
        }


@dataclass
class Report:
    """A whole report: where it came from, the verdict, the sections."""

    title: str
    source: str  # "demo" | "scenarios" | "service"
    generated_at: datetime
    epsilon: Decimal
    sections: list[Section]
    verdict: str = ""  # set by overall_verdict unless the source judged it (validate)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The document written as `report.json`."""
        return {
            "title": self.title,
            "source": self.source,
            "generatedAt": iso(self.generated_at),
            "epsilon": format_decimal(self.epsilon),
            "verdict": self.verdict,
            "notes": self.notes,
            "sections": [s.to_json(self.epsilon) for s in self.sections],
        }


def section_verdict(section: Section, epsilon: Decimal) -> tuple[str, str | None]:
    """(verdict, cause) of a section by the seed's one tolerance rule, from the figures.

    A final period is at parity when what it bills (invoice line + applied corrections)
    is within tolerance of the ledger; an open period when Stripe's meter is, else it is
    pending (the writer may still be pushing) unless the reconciler judged it settled.
    """
    d = drift(section.ledger_total, section.billed)
    if within_tolerance(d, epsilon):
        return PARITY, None
    if not section.final:
        return PENDING, "the period is open: Stripe's meter may still catch up"
    if section.ledger_total > section.billed:
        return DRIFT, (
            "the invoice billed less than the ledger (usage after close?): "
            "`stripemeter corrections apply` bills the proposed correction"
        )
    return DRIFT, "the invoice billed more than the ledger: a credit note corrects it"


def overall_verdict(sections: list[Section]) -> str:
    """DRIFT if any section drifts (or errs), else PENDING if any is pending, else PARITY."""
    verdicts = {s.verdict for s in sections}
    if ERROR in verdicts:
        return ERROR
    if DRIFT in verdicts:
        return DRIFT
    if PENDING in verdicts:
        return PENDING
    return PARITY
