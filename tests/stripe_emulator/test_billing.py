"""Billing engine details: tiers, licensed items, send_invoice, cancel at period end."""

from __future__ import annotations

import time
from typing import Any

import requests
import stripe

from tests.stripe_emulator.helpers import (
    advance,
    clock_customer,
    metered_price,
    seat_price,
    send_event,
)


def _cycle(client: stripe.StripeClient, sub_id: str) -> Any:
    found = client.v1.invoices.list({"subscription": sub_id}).data
    return next(i for i in found if i.billing_reason == "subscription_cycle")


def test_graduated_tiers_price_the_usage(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, price = metered_price(
        client, tiers=[{"up_to": 10, "unit_amount": 10}, {"up_to": "inf", "unit_amount": 1}]
    )
    clock, cus = clock_customer(client, now - 7200)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 600, 25, "t")
    advance(client, clock.id, sub["items"].data[0].current_period_end + 3600)
    inv = _cycle(client, sub.id)
    assert (inv.lines.data[0].quantity, inv.amount_paid) == (25, 10 * 10 + 15 * 1)


def test_licensed_item_is_billed_up_front_and_decline_makes_incomplete(
    client: stripe.StripeClient,
) -> None:
    price = seat_price(client)
    _, good = clock_customer(client, int(time.time()))
    sub = client.v1.subscriptions.create(
        {
            "customer": good.id,
            "items": [{"price": price.id, "quantity": 2}],
            "expand": ["latest_invoice"],
        }
    )
    assert (sub.status, sub.latest_invoice.status, sub.latest_invoice.amount_paid) == (
        "active",
        "paid",
        1400,
    )
    _, bad = clock_customer(client, int(time.time()), card="pm_card_chargeCustomerFail")
    failed = client.v1.subscriptions.create(
        {"customer": bad.id, "items": [{"price": price.id}], "expand": ["latest_invoice"]}
    )
    assert (
        failed.status,
        failed.latest_invoice.status,
        failed.latest_invoice.amount_remaining,
    ) == (
        "incomplete",
        "open",
        700,
    )


def test_send_invoice_is_finalized_but_not_charged(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, price = metered_price(client, unit_amount=5)
    clock, cus = clock_customer(client, now - 7200)
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": price.id}],
            "collection_method": "send_invoice",
            "days_until_due": 7,
        }
    )
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 600, 2, "s")
    end = sub["items"].data[0].current_period_end
    advance(client, clock.id, end + 3600)
    inv = _cycle(client, sub.id)
    assert (inv.status, inv.collection_method, inv.amount_remaining) == ("open", "send_invoice", 10)
    assert inv.due_date == end + 3600 + 7 * 86400
    assert inv.attempt_count == 0
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_cancel_at_period_end_stops_after_final_invoice(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, price = metered_price(client, unit_amount=5)
    clock, cus = clock_customer(client, now - 7200)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    end = sub["items"].data[0].current_period_end
    advance(client, clock.id, end + 3600)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", end)
    assert _cycle(client, sub.id).status == "paid"
    # No further periods: advancing another month adds no invoice.
    advance(client, clock.id, end + 40 * 86400)
    assert len(client.v1.invoices.list({"subscription": sub.id}).data) == 2


def _events(base_url: str) -> list[dict[str, Any]]:
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    return list(state["events"])


def test_events_for_create_update_renewal_and_cancel(
    client: stripe.StripeClient, base_url: str
) -> None:
    t0 = int(time.time()) - 3 * 86400
    seat = seat_price(client)
    clock, cus = clock_customer(client, t0)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": seat.id}]})
    first = str(sub.latest_invoice)
    got = [(e["type"], e["data"]["object"]["id"], e["created"]) for e in _events(base_url)]
    assert got == [
        ("invoice.created", first, t0),
        ("invoice.finalized", first, t0),
        ("invoice.paid", first, t0),
        ("customer.subscription.created", sub.id, t0),
    ]
    assert _events(base_url)[-1]["data"]["object"]["latest_invoice"] == first
    client.v1.subscriptions.update(sub.id, {"metadata": {"plan": "gold"}})
    upd = _events(base_url)[-1]
    assert upd["type"] == "customer.subscription.updated"
    assert upd["data"]["previous_attributes"] == {"metadata": {}}
    assert upd["data"]["object"]["metadata"] == {"plan": "gold"}
    period_end = sub["items"].data[0].current_period_end
    n = len(_events(base_url))
    advance(client, clock.id, period_end + 2 * 3600)
    renewal = str(client.v1.subscriptions.retrieve(sub.id).latest_invoice)
    later = _events(base_url)[n:]
    assert [(e["type"], e["created"]) for e in later if e["type"].startswith("invoice.")] == [
        ("invoice.created", period_end),
        ("invoice.finalized", period_end + 3600),
        ("invoice.paid", period_end + 3600),
    ]
    assert all(
        e["data"]["object"]["id"] == renewal for e in later if e["type"].startswith("invoice.")
    )
    updated = [e for e in later if e["type"] == "customer.subscription.updated"]
    assert updated[0]["created"] == period_end
    assert set(updated[0]["data"]["previous_attributes"]) == {"items", "latest_invoice"}
    assert updated[0]["data"]["previous_attributes"]["latest_invoice"] == first
    ready = later[-1]
    assert (ready["type"], ready["data"]["object"]["id"], ready["created"]) == (
        "test_helpers.test_clock.ready",
        clock.id,
        period_end + 2 * 3600,
    )
    client.v1.subscriptions.cancel(sub.id)
    last = _events(base_url)[-1]
    assert (last["type"], last["data"]["object"]["status"]) == (
        "customer.subscription.deleted",
        "canceled",
    )


def test_payment_failed_event_and_past_due_update(
    client: stripe.StripeClient, base_url: str
) -> None:
    t0 = int(time.time()) - 3 * 86400
    seat = seat_price(client)
    clock, cus = clock_customer(client, t0)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": seat.id}]})
    bad = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": cus.id})
    client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": bad.id}})
    period_end = sub["items"].data[0].current_period_end
    advance(client, clock.id, period_end + 2 * 3600)
    events = _events(base_url)
    failed = [e for e in events if e["type"] == "invoice.payment_failed"]
    assert [(e["created"], e["data"]["object"]["status"]) for e in failed] == [
        (period_end + 3600, "open")
    ]
    past_due = [
        e
        for e in events
        if e["type"] == "customer.subscription.updated"
        and e["data"]["object"]["status"] == "past_due"
    ]
    assert past_due[0]["data"]["previous_attributes"]["status"] == "active"
    good = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    inv_id = failed[0]["data"]["object"]["id"]
    client.v1.invoices.pay(inv_id, {"payment_method": good.id})
    last = _events(base_url)[-2:]
    assert [e["type"] for e in last] == ["invoice.paid", "customer.subscription.updated"]
    assert last[1]["data"]["previous_attributes"]["status"] == "past_due"
    assert last[1]["data"]["object"]["status"] == "active"


def test_grace_hour_usage_counts_until_finalization_only(client: stripe.StripeClient) -> None:
    _, price = metered_price(client, unit_amount=10, interval="day")
    clock, cus = clock_customer(client, int(time.time()) - 3 * 86400)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    start = sub["items"].data[0].current_period_start
    end = sub["items"].data[0].current_period_end
    advance(client, clock.id, end + 60)  # past the period end, inside the grace hour
    draft = _cycle(client, sub.id)
    assert (draft.status, draft.total, draft.period_end) == ("draft", 0, end)
    send_event(client, cus.id, end - 10, 3, "late-in-period")  # usage of the closed period
    advance(client, clock.id, end + 2 * 3600)
    inv = client.v1.invoices.retrieve(draft.id)
    assert (inv.status, inv.total, inv.lines.data[0].quantity) == ("paid", 30, 3)
    assert (inv.lines.data[0].period.start, inv.lines.data[0].period.end) == (start, end)
    send_event(client, cus.id, end - 5, 4, "after-finalization")
    assert client.v1.invoices.retrieve(draft.id).total == 30  # finalized: never changes


def test_cancel_at_period_end_licensed_bills_no_next_period(client: stripe.StripeClient) -> None:
    seat = seat_price(client)
    clock, cus = clock_customer(client, int(time.time()) - 7200)
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": seat.id}], "cancel_at_period_end": True}
    )
    assert sub.cancel_at_period_end is True
    end = sub["items"].data[0].current_period_end
    advance(client, clock.id, end + 2 * 3600)
    ended = client.v1.subscriptions.retrieve(sub.id)
    assert (ended.status, ended.ended_at) == ("canceled", end)
    invoices = client.v1.invoices.list({"subscription": sub.id}).data
    assert [(i.billing_reason, i.total) for i in invoices] == [("subscription_create", 700)]
