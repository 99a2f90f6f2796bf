"""Billing engine details: tiers, licensed items, send_invoice, cancel at period end."""

from __future__ import annotations

import time
from typing import Any

import stripe

from tests.stripe_emulator.helpers import advance, clock_customer, send_event


def _meter(client: stripe.StripeClient) -> Any:
    return client.v1.billing.meters.create(
        {"display_name": "m", "event_name": "api_calls", "default_aggregation": {"formula": "sum"}}
    )


def _cycle(client: stripe.StripeClient, sub_id: str) -> Any:
    found = client.v1.invoices.list({"subscription": sub_id}).data
    return next(i for i in found if i.billing_reason == "subscription_cycle")


def test_graduated_tiers_price_the_usage(client: stripe.StripeClient) -> None:
    now = int(time.time())
    meter = _meter(client)
    product = client.v1.products.create({"name": "API"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [{"up_to": 10, "unit_amount": 10}, {"up_to": "inf", "unit_amount": 1}],
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
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
    product = client.v1.products.create({"name": "Seat"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 700,
            "recurring": {"interval": "month"},
        }
    )
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
    meter = _meter(client)
    product = client.v1.products.create({"name": "API"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
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
    meter = _meter(client)
    product = client.v1.products.create({"name": "API"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
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
