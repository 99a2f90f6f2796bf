"""The scenarios' verdict: each Stripe invoice beside the oracle's, one cell per invoice.

A cell is at parity when the invoice Stripe holds bills exactly what the oracle says:
the metered line's quantity and amount, the invoice items (corrections of the previous
period: their amounts on the invoice, their quantities on the applied corrections), the
credit notes issued against it, the invoice total; and the reconciler's latest report
of the period is final, `ok` or `resolved`, with the oracle's ledger figure. Every
customer's invoices are matched in order: `subscription_create` is cycle 0, the
`subscription_cycle` invoices cycles 1.. by period end; a missing or an extra invoice
is drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from steps._billing import fmt, iso
from stripemeter_dev.scenarios.oracle import Adjustment, ExpectedInvoice

SETTLED = ("ok", "resolved")


def epoch(text: Any) -> int:
    """An ISO-8601 time from the API as Unix seconds (0 when absent)."""
    if not text:
        return 0
    return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp())


@dataclass
class Billed:
    """What one invoice bills: metered line, invoice items, credit notes, total."""

    quantity: int = 0
    amount: int = 0
    items: list[tuple[int, int]] = field(default_factory=list)
    credit_notes: list[tuple[int, int]] = field(default_factory=list)
    total: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "quantity": self.quantity,
            "amount": self.amount,
            "invoiceItems": [{"quantity": q, "amount": a} for q, a in self.items],
            "creditNotes": [{"quantity": q, "amount": a} for q, a in self.credit_notes],
            "total": self.total,
        }


@dataclass
class Cell:
    """One invoice of one customer: the oracle's figures, Stripe's, and the verdict."""

    scenario: str
    customer: str
    customer_id: str
    cycle: int
    invoice_id: str = ""
    status: str = ""
    period_start: int = 0
    period_end: int = 0
    oracle: ExpectedInvoice | None = None
    stripe: Billed | None = None
    ledger: Decimal | None = None
    report_status: str = ""
    corrections: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def parity(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        oracle = self.oracle
        return {
            "scenario": self.scenario,
            "customer": self.customer,
            "stripeCustomerId": self.customer_id,
            "cycle": self.cycle,
            "invoiceId": self.invoice_id or None,
            "invoiceStatus": self.status or None,
            "periodStart": iso(self.period_start) if self.period_start else None,
            "periodEnd": iso(self.period_end) if self.period_end else None,
            "oracle": None
            if oracle is None
            else {
                "quantity": oracle.quantity,
                "amount": oracle.amount,
                "ledger": fmt(oracle.ledger),
                "invoiceItems": [_adjustment(a) for a in oracle.invoice_items],
                "creditNotes": [_adjustment(a) for a in oracle.credit_notes],
                "total": oracle.total,
            },
            "ledger": None if self.ledger is None else fmt(self.ledger),
            "reportStatus": self.report_status or None,
            "stripe": None if self.stripe is None else self.stripe.to_json(),
            "corrections": self.corrections,
            "verdict": "parity" if self.parity else "drift",
            "problems": self.problems,
        }


def _adjustment(adjustment: Adjustment) -> dict[str, int]:
    return {"quantity": adjustment.quantity, "amount": adjustment.amount}


def billed(invoice: Any, lines: Sequence[Any], notes: Sequence[Any], price_id: str) -> Billed:
    """Read what an invoice bills from Stripe's invoice, its lines and credit notes."""
    found = Billed(total=int(invoice.total or 0))
    for line in lines:
        parent = line.get("parent") or {}
        if parent.get("type") == "invoice_item_details":
            found.items.append((int(line.get("quantity") or 0), int(line.get("amount") or 0)))
            continue
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
        if price == price_id:
            found.quantity += int(line.get("quantity") or 0)
            found.amount += int(line.get("amount") or 0)
    for note in notes:
        if note.get("status") == "void":
            continue
        quantity = sum(
            int(n.get("quantity") or 0) for n in (note.get("lines") or {}).get("data", [])
        )
        found.credit_notes.append((quantity, int(note.get("amount") or 0)))
    return found


def compare_customer(
    *,
    scenario: str,
    customer: str,
    customer_id: str,
    price_id: str,
    expected: Sequence[ExpectedInvoice],
    invoices: Sequence[tuple[Any, Sequence[Any], Sequence[Any]]],
    reports: dict[tuple[str, int], dict[str, Any]],
    corrections: Sequence[dict[str, Any]],
) -> list[Cell]:
    """One cell per expected invoice of the customer, plus one per unexpected invoice."""
    opening = [i for i in invoices if i[0].billing_reason == "subscription_create"]
    cycles = sorted(
        (i for i in invoices if i[0].billing_reason == "subscription_cycle"),
        key=lambda i: (int(i[0].period_end or 0), i[0].id),
    )
    others = [i for i in invoices if i not in opening and i not in cycles]
    by_cycle: dict[int, list[tuple[Any, Sequence[Any], Sequence[Any]]]] = {0: opening}
    for number, found in enumerate(cycles, start=1):
        by_cycle[number] = [found]
    cells = []
    for oracle in expected:
        cell = Cell(scenario, customer, customer_id, oracle.cycle, oracle=oracle)
        matches = by_cycle.pop(oracle.cycle, [])
        if not matches:
            cell.problems.append("Stripe has no such invoice")
            cells.append(cell)
            continue
        invoice, lines, notes = matches[0]
        others += matches[1:]
        cell.invoice_id, cell.status = invoice.id, str(invoice.status)
        cell.period_start, cell.period_end = int(invoice.period_start), int(invoice.period_end)
        cell.stripe = billed(invoice, lines, notes, price_id)
        _judge(cell, oracle, reports, corrections)
        cells.append(cell)
    for leftovers in by_cycle.values():
        others += leftovers
    for invoice, lines, notes in others:
        extra = Cell(scenario, customer, customer_id, -1, invoice.id, str(invoice.status))
        extra.stripe = billed(invoice, lines, notes, price_id)
        extra.problems.append(f"invoice {invoice.id} ({invoice.billing_reason}) is not expected")
        cells.append(extra)
    return cells


def _judge(
    cell: Cell,
    oracle: ExpectedInvoice,
    reports: dict[tuple[str, int], dict[str, Any]],
    corrections: Sequence[dict[str, Any]],
) -> None:
    stripe = cell.stripe
    assert stripe is not None
    problems = cell.problems
    if (stripe.quantity, stripe.amount) != (oracle.quantity, oracle.amount):
        problems.append(
            f"metered line {stripe.quantity} for {stripe.amount}, oracle {oracle.quantity} "
            f"for {oracle.amount}"
        )
    if sorted(a for _, a in stripe.items) != sorted(a.amount for a in oracle.invoice_items):
        problems.append(
            f"invoice items {[a for _, a in stripe.items]}, oracle "
            f"{[a.amount for a in oracle.invoice_items]}"
        )
    want_notes = sorted((a.quantity, a.amount) for a in oracle.credit_notes)
    if sorted(stripe.credit_notes) != want_notes:
        problems.append(f"credit notes {stripe.credit_notes}, oracle {want_notes}")
    if stripe.total != oracle.total:
        problems.append(f"total {stripe.total}, oracle {oracle.total}")
    if oracle.cycle == 0:
        return
    # Corrections of this period (credit notes) and of the previous one (invoice items).
    items = []
    for correction in corrections:
        start, end = epoch(correction.get("periodStart")), epoch(correction.get("periodEnd"))
        kind, status = correction.get("kind"), correction.get("status")
        mine = (kind == "credit_note" and start == cell.period_start) or (
            kind == "invoice_item" and end == cell.period_start
        )
        if not mine or status == "superseded":
            continue
        sign = "+" if kind == "invoice_item" else "-"
        cell.corrections.append(
            f"{kind} {sign}{correction.get('quantity')} = {correction.get('amount')} ({status})"
        )
        if kind == "invoice_item":
            items.append(Decimal(str(correction.get("quantity"))))
        if status != "applied":
            problems.append(f"correction {correction.get('id')} is {status}, not applied")
    if sorted(items) != sorted(Decimal(a.quantity) for a in oracle.invoice_items):
        problems.append(
            f"invoice item corrections {[fmt(q) for q in items]}, oracle "
            f"{[a.quantity for a in oracle.invoice_items]}"
        )
    report = reports.get((cell.customer, cell.period_start))
    if report is None:
        problems.append("the reconciler made no report for this period")
        return
    cell.ledger = Decimal(str(report.get("local")))
    cell.report_status = str(report.get("status"))
    if cell.ledger != oracle.ledger:
        problems.append(f"ledger {fmt(cell.ledger)}, oracle {fmt(oracle.ledger)}")
    if cell.report_status not in SETTLED:
        problems.append(f"the period reports {cell.report_status}")
    if report.get("final") is not True:
        problems.append("the period's latest report is not final (its invoice was not seen)")


def print_matrix(results: Sequence[dict[str, Any]]) -> None:
    """The matrix scenario x customer x invoice, then each scenario's problems."""
    header = (
        f"{'scenario':<22} {'customer':<9} {'inv':>3}  {'oracle qty/amt':>15}  {'ledger':>9}  "
        f"{'stripe qty/amt':>15}  {'total o/s':>13}  {'correction':<28} verdict"
    )
    print()
    print(header)
    print("-" * len(header))
    for result in results:
        if result["verdict"] == "error":
            print(f"{result['name']:<22} ERROR: {result.get('error')}")
        for cell in result["cells"]:
            oracle, stripe = cell["oracle"] or {}, cell["stripe"] or {}
            expected = f"{oracle.get('quantity', '-')}/{oracle.get('amount', '-')}"
            seen = f"{stripe.get('quantity', '-')}/{stripe.get('amount', '-')}"
            totals = f"{oracle.get('total', '-')}/{stripe.get('total', '-')}"
            correction = "; ".join(cell["corrections"]) or "-"
            print(
                f"{cell['scenario']:<22} {cell['customer']:<9} {cell['cycle']:>3}  "
                f"{expected:>15}  {cell['ledger'] or '-':>9}  {seen:>15}  {totals:>13}  "
                f"{correction:<28} {cell['verdict'].upper()}"
            )
            for problem in cell["problems"]:
                print(f"{'':<22}   DRIFT: {problem}")
        for problem in result.get("problems", []):
            print(f"{result['name']:<22}   DRIFT: {problem}")
    print()
    for result in results:
        print(f"  {result['name']:<22} {result['verdict']:<7} {result['wallTimeS']:>6} s")
