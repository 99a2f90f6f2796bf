"""The scenario verdict rules: what makes a cell drift. Stripe's side is built as the
SDK builds it (`stripe.Invoice.construct_from`), the oracle's from `expected_invoices`
rules by hand; each case breaks one thing and names the problem the matrix must show."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe

from steps._billing import iso
from steps._scenario_matrix import Billed, Cell, _judge, compare_customer
from stripemeter_dev.scenarios.oracle import Adjustment, ExpectedInvoice

START, END = 1_800_000_000, 1_802_678_400
NEXT_END = END + 2_678_400


def report(start: int, local: str, status: str = "ok") -> dict[tuple[str, int], dict[str, Any]]:
    return {
        ("c", start): {"local": local, "status": status, "periodStart": iso(start), "final": True}
    }


def judged(
    oracle: ExpectedInvoice,
    stripe_side: Billed,
    reports: dict[tuple[str, int], dict[str, Any]],
    corrections: list[dict[str, Any]] | None = None,
    start: int = START,
) -> list[str]:
    cell = Cell(
        "s", "c", "cus_1", oracle.cycle, "in_1", "paid", start, start + 1, oracle, stripe_side
    )
    _judge(cell, oracle, reports, corrections or [])
    return cell.problems


def item_correction(status: str = "applied") -> dict[str, Any]:
    return {
        "id": "k1",
        "kind": "invoice_item",
        "quantity": "20",
        "amount": 140,
        "status": status,
        "periodStart": iso(START),
        "periodEnd": iso(END),
    }


def test_an_invoice_billing_what_the_oracle_says_is_at_parity() -> None:
    oracle = ExpectedInvoice("c", 1, 425, 2125, Decimal(425))
    assert judged(oracle, Billed(425, 2125, total=2125), report(START, "425")) == []


def test_a_metered_line_short_of_the_oracle_is_drift_with_both_figures() -> None:
    oracle = ExpectedInvoice("c", 1, 11, 110, Decimal("11.71"))
    problems = judged(oracle, Billed(6, 60, total=60), report(START, "11.71"))
    assert problems == ["metered line 6 for 60, oracle 11 for 110", "total 60, oracle 110"]


def test_a_correction_applied_twice_is_drift() -> None:
    oracle = ExpectedInvoice("c", 2, 5, 35, Decimal(5), invoice_items=(Adjustment(20, 140),))
    twice = Billed(5, 35, items=[(20, 140), (20, 140)], total=315)
    problems = judged(oracle, twice, report(END, "5"), [item_correction()], start=END)
    assert problems == ["invoice items [140, 140], oracle [140]", "total 315, oracle 175"]


def test_a_correction_left_proposed_is_drift_even_before_the_invoice_shows_it() -> None:
    oracle = ExpectedInvoice("c", 2, 5, 35, Decimal(5), invoice_items=(Adjustment(20, 140),))
    missing = Billed(5, 35, total=35)
    problems = judged(oracle, missing, report(END, "5"), [item_correction("proposed")], start=END)
    assert problems == [
        "invoice items [], oracle [140]",
        "total 35, oracle 175",
        "correction k1 is proposed, not applied",
    ]


def test_a_credit_note_for_the_wrong_quantity_is_drift() -> None:
    oracle = ExpectedInvoice("c", 1, 144, 1296, Decimal(129), credit_notes=(Adjustment(15, 135),))
    wrong = Billed(144, 1296, credit_notes=[(14, 126)], total=1296)
    assert judged(oracle, wrong, report(START, "129", "resolved")) == [
        "credit notes [(14, 126)], oracle [(15, 135)]"
    ]


def test_the_ledger_and_the_reconcilers_verdict_are_part_of_parity() -> None:
    oracle = ExpectedInvoice("c", 1, 425, 2125, Decimal(425))
    right = Billed(425, 2125, total=2125)
    assert judged(oracle, right, report(START, "430", "drift")) == [
        "ledger 430, oracle 425",
        "the period reports drift",
    ]
    assert judged(oracle, right, {}) == ["the reconciler made no report for this period"]
    still_open = {("c", START): {**report(START, "425")[("c", START)], "final": False}}
    assert judged(oracle, right, still_open) == [
        "the period's latest report is not final (its invoice was not seen)"
    ]


def invoice(number: int, reason: str, end: int, total: int = 0) -> stripe.Invoice:
    return stripe.Invoice.construct_from(
        {
            "id": f"in_{number}",
            "billing_reason": reason,
            "status": "paid",
            "period_start": end - 2_678_400,
            "period_end": end,
            "total": total,
        },
        "sk_test_x",
    )


def test_a_missing_invoice_and_an_unexpected_one_are_each_a_drifting_cell() -> None:
    expected = [
        ExpectedInvoice("c", 0, 0, 0, Decimal(0)),
        ExpectedInvoice("c", 1, 0, 0, Decimal(0)),
        ExpectedInvoice("c", 2, 0, 0, Decimal(0)),
    ]
    found = [
        (invoice(1, "subscription_create", START), [], []),
        (invoice(2, "subscription_cycle", END), [], []),
        (invoice(3, "manual", NEXT_END, total=500), [], []),
    ]
    cells = compare_customer(
        scenario="s",
        customer="c",
        customer_id="cus_1",
        price_id="price_1",
        expected=expected,
        invoices=found,
        reports=report(END - 2_678_400, "0"),
        corrections=[],
    )
    assert [(c.cycle, c.invoice_id, c.problems) for c in cells] == [
        (0, "in_1", []),
        (1, "in_2", []),
        (2, "", ["Stripe has no such invoice"]),
        (-1, "in_3", ["invoice in_3 (manual) is not expected"]),
    ]
