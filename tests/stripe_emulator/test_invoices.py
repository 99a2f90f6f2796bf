"""Invoices and the billing engine: renewal, finalization, payment, dunning (facts §2.7, §6)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
import stripe

from tests.stripe_emulator.helpers import (
    advance,
    clock_customer,
    metered_price,
    seat_price,
    send_event,
)

DAY = 86400


def _subscribed(
    client: stripe.StripeClient, card: str | None = "pm_card_visa", **price_kw: Any
) -> dict[str, Any]:
    """Clock at now-2h, metered sub, 30 units of usage, clock at now-5min."""
    now = int(time.time())
    meter, price = metered_price(client, **price_kw)
    clock, cus = clock_customer(client, now - 7200, card=card)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    item = sub["items"].data[0]
    advance(client, clock.id, now - 300)
    for i, ts in enumerate([now - 5400, now - 3600, now - 600]):
        send_event(client, cus.id, ts, 10, f"u{i}")
    return {
        "now": now,
        "meter": meter,
        "price": price,
        "clock": clock,
        "cus": cus,
        "sub": sub,
        "item": item,
    }


def _cycle_invoice(client: stripe.StripeClient, sub_id: str) -> Any:
    found = client.v1.invoices.list({"subscription": sub_id, "limit": 100}).data
    return next(i for i in found if i.billing_reason == "subscription_cycle")


def test_renewal_is_draft_until_one_hour_after_period_end(client: stripe.StripeClient) -> None:
    s = _subscribed(client)
    end = s["item"].current_period_end
    advance(client, s["clock"].id, end)
    inv = _cycle_invoice(client, s["sub"].id)
    assert (inv.status, inv.automatically_finalizes_at, inv.status_transitions.finalized_at) == (
        "draft",
        end + 3600,
        None,
    )
    assert (inv.period_start, inv.period_end) == (s["item"].current_period_start, end)
    assert inv.lines.data[0].quantity == 30
    item = client.v1.subscription_items.retrieve(s["item"].id)
    assert item.current_period_start == end
    advance(client, s["clock"].id, end + 3600)
    inv = client.v1.invoices.retrieve(inv.id)
    assert (inv.status, inv.status_transitions.finalized_at, inv.amount_paid) == (
        "paid",
        end + 3600,
        150,
    )
    assert inv.number is not None


def test_declining_card_leaves_invoice_open_and_subscription_past_due(
    client: stripe.StripeClient,
) -> None:
    s = _subscribed(client, card="pm_card_chargeCustomerFail")
    advance(client, s["clock"].id, s["item"].current_period_end + 7200)
    inv = _cycle_invoice(client, s["sub"].id)
    assert (inv.status, inv.amount_due, inv.amount_paid, inv.attempt_count, inv.attempted) == (
        "open",
        150,
        0,
        1,
        True,
    )
    assert inv.status_transitions.finalized_at == s["item"].current_period_end + 3600
    assert client.v1.subscriptions.retrieve(s["sub"].id).status == "past_due"
    with pytest.raises(stripe.CardError) as err:
        client.v1.invoices.pay(inv.id)
    assert (err.value.http_status, err.value.code) == (402, "card_declined")
    good = client.v1.payment_methods.attach("pm_card_visa", {"customer": s["cus"].id})
    paid = client.v1.invoices.pay(inv.id, {"payment_method": good.id})
    assert (paid.status, paid.amount_paid, paid.amount_remaining) == ("paid", 150, 0)
    assert client.v1.subscriptions.retrieve(s["sub"].id).status == "active"


def test_no_payment_method_leaves_invoice_open_and_past_due(client: stripe.StripeClient) -> None:
    s = _subscribed(client, card=None)
    assert s["sub"].status == "active"  # $0 first invoice needs no card
    advance(client, s["clock"].id, s["item"].current_period_end + 3600)
    inv = _cycle_invoice(client, s["sub"].id)
    assert (inv.status, inv.amount_remaining) == ("open", 150)
    assert client.v1.subscriptions.retrieve(s["sub"].id).status == "past_due"
    listed = client.v1.invoices.list({"customer": s["cus"].id, "status": "open"})
    assert [i.id for i in listed.data] == [inv.id]


def test_subscription_default_payment_method_wins(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, price = metered_price(client)
    clock, cus = clock_customer(client, now - 7200, card="pm_card_chargeCustomerFail")
    good = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": price.id}], "default_payment_method": good.id}
    )
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 600, 3, "x")
    advance(client, clock.id, sub["items"].data[0].current_period_end + 3600)
    inv = _cycle_invoice(client, sub.id)
    assert (inv.status, inv.amount_paid) == ("paid", 15)


def test_unit_amount_decimal_amounts(client: stripe.StripeClient) -> None:
    now = int(time.time())
    meter = client.v1.billing.meters.create(
        {"display_name": "m", "event_name": "api_calls", "default_aggregation": {"formula": "sum"}}
    )
    product = client.v1.products.create({"name": "API"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount_decimal": "0.5",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    clock, cus = clock_customer(client, now - 7200)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 600, 31, "x")
    advance(client, clock.id, sub["items"].data[0].current_period_end + 3600)
    line = _cycle_invoice(client, sub.id).lines.data[0]
    assert (line.quantity, line.amount) == (31, 16)  # 15.5 rounds half up
    assert line.pricing.unit_amount_decimal == Decimal("0.5")


def test_late_usage_during_draft_hour_is_billed(client: stripe.StripeClient) -> None:
    s = _subscribed(client)
    end = s["item"].current_period_end
    advance(client, s["clock"].id, end + 60)
    send_event(client, s["cus"].id, end - 1, 4, "late")  # inside the closed period
    send_event(client, s["cus"].id, end, 100, "next-period")  # belongs to the new period
    advance(client, s["clock"].id, end + 3600)
    inv = _cycle_invoice(client, s["sub"].id)
    assert (inv.lines.data[0].quantity, inv.amount_paid) == (34, 170)


def test_lines_endpoint_and_line_shape(client: stripe.StripeClient) -> None:
    s = _subscribed(client)
    advance(client, s["clock"].id, s["item"].current_period_end + 3600)
    inv = _cycle_invoice(client, s["sub"].id)
    lines = client.v1.invoices.line_items.list(inv.id)
    assert lines.url == f"/v1/invoices/{inv.id}/lines"
    line = lines.data[0]
    assert line.object == "line_item"
    assert line.parent.type == "subscription_item_details"
    assert line.parent.subscription_item_details.subscription_item == s["item"].id
    assert line.parent.subscription_item_details.subscription == s["sub"].id
    assert line.pricing.type == "price_details"
    assert (line.pricing.price_details.price, line.currency) == (s["price"].id, "usd")


def test_invoice_filters_and_expand_lines(client: stripe.StripeClient) -> None:
    s = _subscribed(client)
    advance(client, s["clock"].id, s["item"].current_period_end + 3600)
    by_sub = client.v1.invoices.list({"subscription": s["sub"].id})
    assert [i.billing_reason for i in by_sub.data] == ["subscription_cycle", "subscription_create"]
    assert [
        i.status for i in client.v1.invoices.list({"customer": s["cus"].id, "status": "paid"}).data
    ] == [
        "paid",
        "paid",
    ]
    assert client.v1.invoices.list({"customer": s["cus"].id, "status": "draft"}).data == []
    got = client.v1.invoices.retrieve(by_sub.data[0].id, {"expand": ["customer", "lines"]})
    assert got.customer.id == s["cus"].id
    expanded = client.v1.invoices.list(
        {"subscription": s["sub"].id, "expand": ["data.lines", "data.customer"]}
    )
    assert {i.customer.email for i in expanded.data} == {"demo@example.com"}
    assert expanded.data[0].lines.data[0].quantity == 30


def test_finalize_void_and_transition_errors(client: stripe.StripeClient) -> None:
    s = _subscribed(client, card=None)
    end = s["item"].current_period_end
    advance(client, s["clock"].id, end)
    draft = _cycle_invoice(client, s["sub"].id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.void_invoice(draft.id)
    assert err.value.code == "status_transition_invalid"
    opened = client.v1.invoices.finalize_invoice(draft.id, {"auto_advance": False})
    assert (opened.status, opened.status_transitions.finalized_at) == ("open", end)
    with pytest.raises(stripe.InvalidRequestError) as err2:
        client.v1.invoices.finalize_invoice(draft.id)
    assert err2.value.code == "status_transition_invalid"
    voided = client.v1.invoices.void_invoice(draft.id)
    assert (voided.status, voided.status_transitions.voided_at) == ("void", end)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.pay(draft.id)


def test_pay_without_payment_method_is_refused(client: stripe.StripeClient) -> None:
    s = _subscribed(client, card=None)
    advance(client, s["clock"].id, s["item"].current_period_end + 3600)
    inv = _cycle_invoice(client, s["sub"].id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.pay(inv.id)
    assert err.value.param == "payment_method"
    paid = client.v1.invoices.pay(inv.id, {"paid_out_of_band": True})
    assert paid.status == "paid"


def test_create_preview_shows_current_period_usage(client: stripe.StripeClient) -> None:
    s = _subscribed(client)
    preview = client.v1.invoices.create_preview(
        {"customer": s["cus"].id, "subscription": s["sub"].id}
    )
    assert preview.id.startswith("upcoming_in")
    line = preview.lines.data[0]
    assert (line.quantity, line.amount, preview.amount_due) == (30, 150, 150)
    assert (line.period.start, line.period.end) == (
        s["item"].current_period_start,
        s["item"].current_period_end,
    )
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.retrieve(preview.id)


def test_real_time_customers_are_billed_without_a_clock(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, price = metered_price(client, interval="day")
    cus = client.v1.customers.create({})
    pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
    send_event(client, cus.id, now - int(2.5 * DAY), 8, "old")
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": price.id}],
            "backdate_start_date": now - 3 * DAY + 600,
        }
    )
    cycles = [
        i
        for i in client.v1.invoices.list({"subscription": sub.id}).data
        if i.billing_reason == "subscription_cycle"
    ]
    oldest = min(cycles, key=lambda i: i.period_start)
    assert (oldest.period_start, oldest.period_end) == (now - 3 * DAY + 600, now - 2 * DAY + 600)
    assert (oldest.status, oldest.amount_paid, oldest.lines.data[0].quantity) == ("paid", 40, 8)
    assert len(cycles) == 2
    assert sub["items"].data[0].current_period_start == now - DAY + 600


def test_list_created_exact_and_due_date_filters(client: stripe.StripeClient) -> None:

    seat = seat_price(client)
    t0 = int(time.time()) - 7200
    _, cus = clock_customer(client, t0, card=None)
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": seat.id}],
            "collection_method": "send_invoice",
            "days_until_due": 7,
        }
    )
    inv_id = str(sub.latest_invoice)
    assert [i.id for i in client.v1.invoices.list({"customer": cus.id, "created": t0}).data] == [
        inv_id
    ]
    assert client.v1.invoices.list({"customer": cus.id, "created": t0 + 1}).data == []
    finalized = client.v1.invoices.finalize_invoice(inv_id)
    due = finalized.due_date
    assert due == t0 + 7 * 86400
    got = client.v1.invoices.list({"customer": cus.id, "due_date": {"gte": due}}).data
    assert [i.id for i in got] == [inv_id]
    assert client.v1.invoices.list({"customer": cus.id, "due_date": {"lt": due}}).data == []
    _, price = metered_price(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.invoices.create_preview(
            {"customer": cus.id, "invoice_items": [{"price": price.id}]}
        )
    assert (err.value.code, err.value.param) == ("emulator_unsupported", "invoice_items")
