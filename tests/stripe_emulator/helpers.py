"""Small builders shared by the emulator tests (real SDK calls, no shortcuts)."""

from __future__ import annotations

import time
from typing import Any

import stripe


def wait_ready(client: stripe.StripeClient, clock_id: str, timeout: float = 10) -> Any:
    """Poll a test clock until it is ready, as the facts §7.1 flow does."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        clock = client.v1.test_helpers.test_clocks.retrieve(clock_id)
        if clock.status == "ready":
            return clock
        time.sleep(0.01)
    raise TimeoutError(clock_id)


def advance(client: stripe.StripeClient, clock_id: str, frozen_time: int) -> Any:
    """Advance a clock and wait until it is ready."""
    client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": frozen_time})
    return wait_ready(client, clock_id)


def metered_price(
    client: stripe.StripeClient, event_name: str = "api_calls", unit_amount: int = 5, **extra: Any
) -> tuple[Any, Any]:
    """A sum meter and a monthly metered price on it; returns (meter, price).

    `formula` and `interval` change the meter's aggregation and the price's interval;
    `tiers` (with `tiers_mode`, graduated by default) prices it by tiers instead.
    """
    meter = client.v1.billing.meters.create(
        {
            "display_name": "API calls",
            "event_name": event_name,
            "default_aggregation": {"formula": extra.pop("formula", "sum")},
        }
    )
    product = client.v1.products.create({"name": "API"})
    tiers = extra.pop("tiers", None)
    pricing: dict[str, Any] = (
        {"unit_amount": unit_amount}
        if tiers is None
        else {
            "billing_scheme": "tiered",
            "tiers_mode": extra.pop("tiers_mode", "graduated"),
            "tiers": tiers,
        }
    )
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            **pricing,
            "nickname": "per call",
            "recurring": {
                "interval": extra.pop("interval", "month"),
                "usage_type": "metered",
                "meter": meter.id,
            },
        }
    )
    assert not extra, f"metered_price: unknown options {sorted(extra)}"
    return meter, price


def seat_price(client: stripe.StripeClient, amount: int = 700) -> Any:
    """A licensed monthly price of `amount` cents per seat, on its own product."""
    product = client.v1.products.create({"name": "Seat"})
    return client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": amount,
            "recurring": {"interval": "month"},
        }
    )


def clock_customer(
    client: stripe.StripeClient, frozen_time: int, card: str | None = "pm_card_visa"
) -> tuple[Any, Any]:
    """A clock at `frozen_time` and a customer on it (with a default card unless None)."""
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": frozen_time, "name": "t"})
    cus = client.v1.customers.create({"test_clock": clock.id, "email": "demo@example.com"})
    if card is not None:
        pm = client.v1.payment_methods.attach(card, {"customer": cus.id})
        client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
    return clock, cus


def send_event(
    client: stripe.StripeClient,
    cus_id: str,
    ts: int,
    value: int,
    identifier: str,
    event_name: str = "api_calls",
) -> Any:
    """One meter event for `cus_id`."""
    return client.v1.billing.meter_events.create(
        {
            "event_name": event_name,
            "identifier": identifier,
            "timestamp": ts,
            "payload": {"stripe_customer_id": cus_id, "value": str(value)},
        }
    )
