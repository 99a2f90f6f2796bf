"""The one tolerance rule: a period is at parity when drift_abs == 0 or drift_pct <=
RECONCILIATION_EPSILON, compared exactly; reports at parity with non-zero drift say
"within tolerance", and a final period within tolerance still gets its correction."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripemeter.ops.operator import report_line
from stripemeter.reconciler.drift import WITHIN_TOLERANCE, drift, tolerance_note, within_tolerance
from tests.stripemeter.corrections.closed import UNIT, closed_period

EPSILON = Decimal("0.005")


@pytest.mark.parametrize(
    ("local", "compared", "epsilon", "at_parity"),
    [
        (Decimal(425), Decimal(425), EPSILON, True),  # no drift
        (Decimal(425), Decimal(425), Decimal(0), True),  # epsilon 0: exact still passes
        (Decimal(995), Decimal(1000), EPSILON, True),  # 5/1000 = 0.005: at the edge
        (Decimal(1005), Decimal(1000), EPSILON, True),  # either side of the figure
        (Decimal(994), Decimal(1000), EPSILON, False),  # 6/1000 = 0.006: above
        (Decimal(995), Decimal(1000), Decimal("0.004999"), False),
        (Decimal(995), Decimal(1000), Decimal(0), False),  # epsilon 0: only exact
        (Decimal("999.9999"), Decimal(1000), Decimal(0), False),  # rounds to pct 0, not 0
        # 10001 / 2000100 = 0.00500025: stored as 0.005000, but above epsilon.
        (Decimal(1990099), Decimal(2000100), EPSILON, False),
        (Decimal(5), Decimal(0), Decimal(1), True),  # nothing in Stripe: pct 1
        (Decimal(5), Decimal(0), Decimal("0.999999"), False),
    ],
)
def test_parity_is_no_drift_or_an_exact_drift_pct_within_epsilon(
    local: Decimal, compared: Decimal, epsilon: Decimal, at_parity: bool
) -> None:
    assert within_tolerance(drift(local, compared), epsilon) is at_parity


def test_only_non_zero_drift_at_parity_is_within_tolerance() -> None:
    assert tolerance_note(drift(Decimal(995), Decimal(1000)), EPSILON) == WITHIN_TOLERANCE
    assert tolerance_note(drift(Decimal(1000), Decimal(1000)), EPSILON) is None
    assert tolerance_note(drift(Decimal(994), Decimal(1000)), EPSILON) is None
    assert drift(Decimal(1990099), Decimal(2000100)).drift_pct == Decimal("0.005000")


def test_the_reconcile_command_line_says_within_tolerance() -> None:
    report = {
        "metric": "api_calls",
        "customer_ref": "cus_1",
        "period_start": datetime(2026, 11, 1, tzinfo=UTC),
        "period_end": datetime(2026, 12, 1, tzinfo=UTC),
        "local_total": Decimal(995),
        "stripe_total": Decimal(1000),
        "invoice_quantity": Decimal(1000),
        "corrected_quantity": None,
        "drift_abs": Decimal(5),
        "drift_pct": Decimal("0.005"),
        "status": "ok",
        "final": True,
    }
    assert report_line(report, EPSILON) == (
        "api_calls cus_1 2026-11-01..2026-12-01: local 995, stripe 1000, drift 5 (0.5%) ok,"
        " invoiced, within tolerance"
    )
    assert report_line(report, Decimal(0)).endswith("(0.5%) ok, invoiced")


quantities = st.decimals(min_value=0, max_value=10**12, places=6)
epsilons = st.decimals(min_value=0, max_value=1, places=7)


@given(local=quantities, compared=quantities, epsilon=epsilons)
def test_tolerance_agrees_with_the_rule_stated_without_division(
    local: Decimal, compared: Decimal, epsilon: Decimal
) -> None:
    # drift_abs == 0, or drift_abs <= epsilon * |compared| (pct 1 when compared is 0).
    gap = abs(local - compared)
    expected = gap == 0 or (gap <= epsilon * compared if compared else epsilon >= 1)
    assert within_tolerance(drift(local, compared), epsilon) is expected


@pytest.mark.parametrize(
    ("billed", "rogue", "epsilon", "status", "tolerance"),
    [
        (1000, 0, EPSILON, "ok", None),
        (995, 5, EPSILON, "ok", WITHIN_TOLERANCE),  # invoiced 1000 for a ledger of 995
        (994, 6, EPSILON, "investigate", None),  # 6/1000: just above
        (995, 5, Decimal(0), "investigate", None),  # epsilon 0: only exact
        (1990099, 10001, EPSILON, "investigate", None),  # drift_pct shown 0.005, above it
    ],
)
def test_final_period_status_follows_the_tolerance_rule(
    emulator_url: str,
    db_url: str,
    billed: int,
    rogue: int,
    epsilon: Decimal,
    status: str,
    tolerance: str | None,
) -> None:
    with closed_period(
        emulator_url, db_url, billed=billed, rogue=rogue, RECONCILIATION_EPSILON=epsilon
    ) as closed:
        (made,) = [r for r in closed.reconcile() if r["final"]]
        assert made["status"] == status
        report = closed.period_report()
        assert (report["status"], report["tolerance"]) == (status, tolerance)
        assert (report["local"], report["invoiceQuantity"]) == (str(billed), str(billed + rogue))
        assert report["drift_abs"] == str(rogue)
        # What the customer pays is not the ledger: the exact difference is proposed
        # whether or not it is within tolerance (a credit note: Stripe billed more).
        proposed = closed.corrections()
        if rogue:
            (correction,) = proposed
            assert (correction["kind"], correction["quantity"], correction["amount"]) == (
                "credit_note",
                str(rogue),
                rogue * UNIT,
            )
            assert correction["status"] == "proposed"
        else:
            assert proposed == []
