"""The oracle against figures computed by hand: tiers, aggregations, fractions,
duplicates and corrections. The oracle is what the service is judged by, so these are
its only judge: every expected number below is worked out in the comment beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from stripemeter_dev.scenarios.model import (
    Customer,
    Price,
    Scenario,
    StripeExtra,
    Tier,
    UsageEvent,
    UsageRequest,
)
from stripemeter_dev.scenarios.oracle import (
    Adjustment,
    ExpectedInvoice,
    amount_for,
    expected_invoices,
)
from tests.steps.conftest import REPO_ROOT

PER_UNIT = Price(unit_amount=5)
GRADUATED = Price(
    tiers_mode="graduated",
    tiers=(Tier(100, 10), Tier(200, 6, flat_amount=50), Tier(None, 2)),
)
VOLUME = Price(tiers_mode="volume", tiers=(Tier(100, 10), Tier(None, 4, flat_amount=25)))


def event(key: str, quantity: str, *, cycle: int = 1, phase: str = "open", offset: int = -60,
          customer: str = "c") -> UsageEvent:  # fmt: skip
    return UsageEvent(customer, cycle, phase, key, Decimal(quantity), offset)  # type: ignore[arg-type]


def scenario(
    *events: UsageEvent,
    aggregation: str = "sum",
    price: Price = PER_UNIT,
    cycles: int = 1,
    customers: tuple[Customer, ...] = (Customer("c"),),
    extras: tuple[StripeExtra, ...] = (),
) -> Scenario:
    """Each event in a request of its own, in the order given."""
    requests = tuple(
        UsageRequest(e.cycle, e.phase, f"req-{i}", (e,))  # type: ignore[arg-type]
        for i, e in enumerate(events)
    )
    return Scenario(
        "t",
        "",
        1,
        cycles,
        "month",
        aggregation,
        price,
        customers,
        requests,
        extras,  # type: ignore[arg-type]
    )


def cycle_invoices(s: Scenario) -> list[ExpectedInvoice]:
    return [i for i in expected_invoices(s) if i.cycle > 0]


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [
        (0, 0),
        (100, 1000),  # 100 x 10, the first tier exactly
        (101, 1056),  # 1000 + 1 x 6 + 50 flat on entering tier 2
        (250, 1000 + 600 + 50 + 100),  # 100 x 10 + 100 x 6 + 50 + 50 x 2
    ],
)
def test_graduated_tiers_price_each_tier_its_own_units(quantity: int, amount: int) -> None:
    assert amount_for(GRADUATED, quantity) == amount


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [(100, 1000), (101, 101 * 4 + 25), (300, 300 * 4 + 25)],
)
def test_volume_tiers_price_every_unit_at_the_tier_the_total_falls_in(
    quantity: int, amount: int
) -> None:
    assert amount_for(VOLUME, quantity) == amount


def test_the_seed_bills_425_units_for_2125_cents_with_its_duplicate_counted_once() -> None:
    s = scenario(
        event("demo-evt-1", "100", offset=-1500),
        event("demo-evt-2", "250", offset=0),
        event("demo-evt-1", "100", offset=-1500),
        event("demo-evt-late", "75", offset=-86400),
    )
    assert expected_invoices(s) == [
        ExpectedInvoice("c", 0, 0, 0, Decimal(0)),
        ExpectedInvoice("c", 1, 425, 2125, Decimal(425)),
    ]


def test_a_key_sent_again_with_another_quantity_keeps_its_first() -> None:
    s = scenario(event("k", "10"), event("k", "99"), event("j", "1"))
    [invoice] = cycle_invoices(s)
    assert (invoice.quantity, invoice.amount) == (11, 55)


def test_fractions_carry_so_the_invoice_bills_the_floor_of_the_period_total() -> None:
    # 0.4 in each of three hours: 1.2 in all, 1 unit billed (per-hour floors would bill 0).
    s = scenario(*(event(f"f{i}", "0.4", offset=-3600 * (i + 1)) for i in range(3)))
    [invoice] = cycle_invoices(s)
    assert (invoice.quantity, invoice.amount, invoice.ledger) == (1, 5, Decimal("1.2"))


def test_max_bills_the_largest_quantity_of_the_period() -> None:
    s = scenario(event("a", "7"), event("b", "12", offset=-7200), event("c", "3", offset=0),
                 aggregation="max")  # fmt: skip
    [invoice] = cycle_invoices(s)
    assert (invoice.quantity, invoice.amount) == (12, 60)


def test_last_bills_the_latest_event_by_time_not_by_arrival() -> None:
    # "new" at F is sent first; "old" at F-2 h arrives after it and must not win.
    s = scenario(event("new", "4", offset=0), event("old", "9", offset=-7200), aggregation="last")
    [invoice] = cycle_invoices(s)
    assert invoice.quantity == 4


def test_a_grace_window_event_is_later_than_any_open_one() -> None:
    s = scenario(
        event("open", "9", offset=0),
        event("grace", "2", phase="grace", offset=-86400),
        aggregation="last",
    )
    [invoice] = cycle_invoices(s)
    assert invoice.quantity == 2


def test_count_counts_distinct_keys_and_ignores_quantities() -> None:
    s = scenario(event("a", "50"), event("b", "0.5"), event("a", "50"), aggregation="count")
    [invoice] = cycle_invoices(s)
    assert (invoice.quantity, invoice.amount) == (2, 10)


def test_grace_window_usage_is_on_the_closing_periods_invoice() -> None:
    s = scenario(event("a", "10"), event("g", "5", phase="grace", offset=-300), cycles=2)
    first, second = cycle_invoices(s)
    assert (first.quantity, first.invoice_items, second.quantity) == (15, (), 0)


def test_post_close_usage_is_one_invoice_item_on_the_next_invoice_priced_by_its_tier() -> None:
    # Period 1 bills 90 (900); with the post-close 30 it owes 120: 1000 + 20 x 6 + 50 = 1170,
    # so the item is 270 for 30 units, on invoice 2 (which bills its own 5 units: 50).
    s = scenario(
        event("a", "90"),
        event("late", "30", phase="post_close", offset=-600),
        event("b", "5", cycle=2),
        price=GRADUATED,
        cycles=2,
    )
    first, second = cycle_invoices(s)
    assert (first.quantity, first.amount, first.ledger, first.credit_notes) == (
        90, 900, Decimal(120), ()
    )  # fmt: skip
    assert second.invoice_items == (Adjustment(30, 270),)
    assert (second.quantity, second.amount, second.total) == (5, 50, 320)


def test_usage_sent_straight_to_stripe_is_one_credit_note_on_that_invoice() -> None:
    s = scenario(event("a", "20"), extras=(StripeExtra("c", 1, 15, -900),))
    [invoice] = cycle_invoices(s)
    assert (invoice.quantity, invoice.amount) == (35, 175)
    assert invoice.credit_notes == (Adjustment(15, 75),)
    assert (invoice.total, invoice.net) == (175, 100)


def test_a_customer_cancelling_at_period_end_has_no_invoice_after_it() -> None:
    customers = (Customer("leaving", 1), Customer("staying"))
    s = scenario(
        event("a", "3", customer="leaving"),
        event("b", "4", customer="staying"),
        event("c", "6", customer="staying", cycle=2),
        cycles=2,
        customers=customers,
    )
    assert [(i.customer, i.cycle, i.quantity) for i in expected_invoices(s)] == [
        ("leaving", 0, 0),
        ("leaving", 1, 3),
        ("staying", 0, 0),
        ("staying", 1, 4),
        ("staying", 2, 6),
    ]


def test_each_customer_is_billed_only_its_own_usage() -> None:
    customers = (Customer("a"), Customer("b"))
    s = scenario(event("x", "3", customer="a"), event("y", "4", customer="b"), customers=customers)
    assert [(i.customer, i.quantity) for i in cycle_invoices(s)] == [("a", 3), ("b", 4)]


def test_the_oracle_imports_nothing_of_the_service_or_the_emulator() -> None:
    probe = (
        "import json, sys; import stripemeter_dev.scenarios.oracle; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('stripemeter', 'stripe_emulator', 'stripe'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == []
