"""Subscription create/update/list parameters Stripe documents: each one either behaves as
Stripe does (trials, billing_cycle_anchor, cancel_at, add_invoice_items, price_data,
payment_settings, list filters) or is refused as `emulator_unsupported` naming it, never
`parameter_unknown`."""

from __future__ import annotations

import calendar
import time
from datetime import UTC, datetime, timedelta
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


def _t0() -> int:
    """A midnight ~20 days ago on a day <= 28 (meter events must be within 35 days)."""
    day = datetime.fromtimestamp(time.time() - 20 * DAY, UTC).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    while day.day > 28:
        day -= timedelta(days=1)
    return int(day.timestamp())


def _plus_month(ts: int) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    year, month = (dt.year + 1, 1) if dt.month == 12 else (dt.year, dt.month + 1)
    day = min(dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


T0 = _t0()


def _unsupported(err: pytest.ExceptionInfo[stripe.InvalidRequestError], param: str) -> None:
    assert (err.value.http_status, err.value.code, err.value.param) == (
        400,
        "emulator_unsupported",
        param,
    )


def test_trial_period_days_trialing_then_first_paid_period(client: stripe.StripeClient) -> None:
    seat = seat_price(client)
    clock, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": seat.id}], "trial_period_days": 14}
    )
    end = T0 + 14 * DAY
    assert (sub.status, sub.trial_start, sub.trial_end, sub.billing_cycle_anchor) == (
        "trialing",
        T0,
        end,
        end,
    )
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (T0, end)
    first = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (first.billing_reason, first.status, first.total) == ("subscription_create", "paid", 0)
    assert [(ln.amount, ln.description) for ln in first.lines.data] == [
        (0, "Trial period for Seat")
    ]
    advance(client, clock.id, end + 2 * 3600)
    sub = client.v1.subscriptions.retrieve(sub.id)
    item = sub["items"].data[0]
    assert sub.status == "active"
    assert (item.current_period_start, item.current_period_end) == (end, _plus_month(end))
    inv = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (inv.billing_reason, inv.status, inv.amount_paid) == ("subscription_cycle", "paid", 700)
    assert (inv.lines.data[0].period.start, inv.lines.data[0].period.end) == (end, _plus_month(end))


def test_trial_end_timestamp_and_its_validation(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    _, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": price.id}], "trial_end": T0 + 3 * DAY}
    )
    assert (sub.status, sub.trial_end, sub["items"].data[0].current_period_end) == (
        "trialing",
        T0 + 3 * DAY,
        T0 + 3 * DAY,
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.create(
            {"customer": cus.id, "items": [{"price": price.id}], "trial_end": T0 - 1}
        )
    assert (err.value.code, err.value.param) == (None, "trial_end")


def test_usage_during_trial_is_not_billed(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    clock, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": price.id}], "trial_period_days": 7}
    )
    advance(client, clock.id, T0 + DAY + 60)
    send_event(client, cus.id, T0 + DAY, 9, "trial-use")
    advance(client, clock.id, T0 + 7 * DAY + 2 * 3600)
    inv = client.v1.invoices.retrieve(str(client.v1.subscriptions.retrieve(sub.id).latest_invoice))
    assert (inv.billing_reason, inv.total, inv.status) == ("subscription_cycle", 0, "paid")


def test_billing_cycle_anchor_metered_first_period_ends_at_anchor(
    client: stripe.StripeClient,
) -> None:
    _, price = metered_price(client)
    clock, cus = clock_customer(client, T0)
    anchor = T0 + 10 * DAY
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": price.id}], "billing_cycle_anchor": anchor}
    )
    item = sub["items"].data[0]
    assert (sub.billing_cycle_anchor, item.current_period_start, item.current_period_end) == (
        anchor,
        T0,
        anchor,
    )
    advance(client, clock.id, T0 + DAY + 60)
    send_event(client, cus.id, T0 + DAY, 4, "a1")
    advance(client, clock.id, anchor + 2 * 3600)
    sub = client.v1.subscriptions.retrieve(sub.id)
    item = sub["items"].data[0]
    assert (item.current_period_start, item.current_period_end) == (anchor, _plus_month(anchor))
    inv = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (inv.period_start, inv.period_end, inv.total, inv.status) == (T0, anchor, 20, "paid")


def test_billing_cycle_anchor_licensed_needs_proration_none(client: stripe.StripeClient) -> None:
    seat = seat_price(client)
    clock, cus = clock_customer(client, T0)
    anchor = T0 + 10 * DAY
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.create(
            {"customer": cus.id, "items": [{"price": seat.id}], "billing_cycle_anchor": anchor}
        )
    _unsupported(err, "billing_cycle_anchor")
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": seat.id}],
            "billing_cycle_anchor": anchor,
            "proration_behavior": "none",
        }
    )
    first = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (first.total, first.status) == (0, "paid")
    advance(client, clock.id, anchor + 2 * 3600)
    inv = client.v1.invoices.retrieve(str(client.v1.subscriptions.retrieve(sub.id).latest_invoice))
    assert (inv.amount_paid, inv.lines.data[0].period.start) == (700, anchor)


def test_cancel_at_ends_with_final_metered_invoice(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    clock, cus = clock_customer(client, T0)
    cancel_at = T0 + 5 * DAY
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": price.id}], "cancel_at": cancel_at}
    )
    assert (sub.cancel_at, sub.status) == (cancel_at, "active")
    advance(client, clock.id, T0 + DAY + 60)
    send_event(client, cus.id, T0 + DAY, 3, "c1")
    advance(client, clock.id, cancel_at + 2 * 3600)
    send_event(client, cus.id, cancel_at + 60, 50, "after")  # after the end: never billed
    sub = client.v1.subscriptions.retrieve(sub.id)
    assert (sub.status, sub.ended_at) == ("canceled", cancel_at)
    assert sub.cancellation_details.reason == "cancellation_requested"
    inv = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (inv.period_start, inv.period_end, inv.total, inv.status) == (
        T0,
        cancel_at,
        15,
        "paid",
    )


def test_cancel_at_on_update_and_licensed_mid_period_refused(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    seat = seat_price(client)
    clock, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    sub = client.v1.subscriptions.update(sub.id, {"cancel_at": T0 + 2 * DAY})
    assert sub.cancel_at == T0 + 2 * DAY
    advance(client, clock.id, T0 + 3 * DAY)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.create(
            {"customer": cus.id, "items": [{"price": seat.id}], "cancel_at": T0 + 20 * DAY}
        )
    _unsupported(err, "cancel_at")
    # at a period end nothing prorates: accepted, ends then with no renewal
    sub = client.v1.subscriptions.create(
        {"customer": cus.id, "items": [{"price": seat.id}], "cancel_at": _plus_month(T0 + 3 * DAY)}
    )
    assert sub.cancel_at == _plus_month(T0 + 3 * DAY)


def test_add_invoice_items_on_first_invoice(client: stripe.StripeClient) -> None:
    seat = seat_price(client)
    setup = client.v1.prices.create(
        {"currency": "usd", "product": seat.product, "unit_amount": 250}
    )
    _, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": seat.id}],
            "add_invoice_items": [{"price": setup.id, "quantity": 2}],
        }
    )
    inv = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert (inv.total, inv.amount_paid, inv.status) == (1200, 1200, "paid")
    one_off = inv.lines.data[1]
    assert (one_off.amount, one_off.quantity, one_off.parent.type) == (
        500,
        2,
        "invoice_item_details",
    )
    assert one_off.parent.invoice_item_details.invoice_item.startswith("ii_")


def test_items_price_data_makes_an_inactive_price(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "Inline"})
    _, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "product": product.id,
                        "unit_amount": 900,
                        "recurring": {"interval": "month"},
                    },
                    "quantity": 2,
                }
            ],
        }
    )
    price = sub["items"].data[0].price
    assert (price.active, price.unit_amount, price.recurring.interval) == (False, 900, "month")
    assert client.v1.prices.retrieve(price.id).active is False
    assert client.v1.invoices.retrieve(str(sub.latest_invoice)).total == 1800


def test_payment_settings_echoed(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    _, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": price.id}],
            "payment_settings": {
                "payment_method_types": ["card"],
                "save_default_payment_method": "on_subscription",
            },
        }
    )
    assert sub.payment_settings.payment_method_types == ["card"]
    assert sub.payment_settings.save_default_payment_method == "on_subscription"
    sub = client.v1.subscriptions.update(
        sub.id, {"payment_settings": {"save_default_payment_method": "off"}}
    )
    assert sub.payment_settings.save_default_payment_method == "off"


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("default_tax_rates", ["txr_1"]),
        ("discounts", [{"coupon": "co_1"}]),
        ("automatic_tax", {"enabled": True}),
        ("billing_thresholds", {"amount_gte": 1000}),
        ("transfer_data", {"destination": "acct_1"}),
    ],
)
def test_amount_changing_params_are_emulator_unsupported(
    client: stripe.StripeClient, param: str, value: Any
) -> None:
    _, price = metered_price(client)
    _, cus = clock_customer(client, T0)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.create(
            {"customer": cus.id, "items": [{"price": price.id}], param: value}  # type: ignore[misc]
        )
    _unsupported(err, param)


def test_trivial_tax_and_discount_params_are_accepted(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    _, cus = clock_customer(client, T0)
    sub = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": price.id}],
            "automatic_tax": {"enabled": False},
            "default_tax_rates": [],
            "discounts": [],
        }
    )
    assert (sub.automatic_tax.enabled, sub.default_tax_rates, sub.discounts) == (False, [], [])


def test_list_filters_created_collection_method_customer(client: stripe.StripeClient) -> None:
    _, price = metered_price(client)
    clock, cus = clock_customer(client, T0)
    _, other = clock_customer(client, T0)
    a = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    advance(client, clock.id, T0 + DAY)
    b = client.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": price.id}],
            "collection_method": "send_invoice",
            "days_until_due": 7,
        }
    )
    client.v1.subscriptions.create({"customer": other.id, "items": [{"price": price.id}]})

    def ids(**params: Any) -> list[str]:
        return [s.id for s in client.v1.subscriptions.list({"customer": cus.id, **params}).data]

    assert sorted(ids()) == sorted([a.id, b.id])
    assert ids(created={"gte": T0 + DAY}) == [b.id]
    assert ids(created=T0) == [a.id]
    assert ids(created={"lt": T0 + DAY}) == [a.id]
    assert ids(collection_method="send_invoice") == [b.id]
    assert ids(collection_method="charge_automatically") == [a.id]
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.subscriptions.list({"current_period_end": {"gt": 1}})
    _unsupported(err, "current_period_end")
