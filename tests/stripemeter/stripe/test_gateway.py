"""The Stripe gateway against the emulator over real HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from stripemeter.errors import StripeRefused, StripeUnavailable
from stripemeter.stripe.gateway import RetryPolicy
from tests.support.stripe_world import HOUR, build_world, fault, meter_events_in_stripe


def test_price_meter_reads_the_meter_behind_a_metered_price(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    meter = world.gateway().price_meter(world.price_id)
    assert (meter.meter_id, meter.event_name, meter.formula) == (
        world.meter_id,
        world.event_name,
        "sum",
    )
    assert (meter.customer_key, meter.value_key) == ("stripe_customer_id", "value")


def test_find_item_and_clock_time_come_from_stripe(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=2)
    gateway = world.gateway()
    for customer in world.customers:
        item = gateway.find_item(customer, world.price_id, None)
        assert item is not None
        assert item.item_id == world.items[customer]
        assert (item.period_start, item.period_end) == (world.period_start, world.period_end)
    assert gateway.clock_time(world.customers[0]) == world.frozen_time()
    assert gateway.find_item(world.customers[0], "price_unknown", None) is None


def test_duplicate_identifier_counts_as_already_pushed(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    gateway = world.gateway()
    meter = gateway.price_meter(world.price_id)
    ts = world.frozen_time() - HOUR
    kwargs: dict[str, Any] = {
        "customer_id": world.customers[0],
        "value": 4,
        "timestamp": ts,
        "identifier": "smw_test_dup",
    }
    assert (
        gateway.send_meter_event(meter, idempotency_key=lambda t: f"k1{t}", **kwargs) == "accepted"
    )
    # A fresh Idempotency-Key with the same identifier: Stripe refuses, we count success.
    assert (
        gateway.send_meter_event(meter, idempotency_key=lambda t: f"k2{t}", **kwargs) == "duplicate"
    )
    assert world.stripe_total(world.customers[0], ts - ts % 60, ts - ts % 60 + 60) == 4


def test_rate_limits_and_server_errors_are_retried(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    gateway = world.gateway()
    meter = gateway.price_meter(world.price_id)
    fault(emulator_url, method="POST", path="/v1/billing/meter_events", status=429, count=2)
    fault(
        emulator_url,
        method="POST",
        path="/v1/billing/meter_events",
        status=500,
        count=1,
        after_commit=True,
    )
    ts = world.frozen_time() - 60
    outcome = gateway.send_meter_event(
        meter,
        customer_id=world.customers[0],
        value=3,
        timestamp=ts,
        identifier="smw_retry",
        idempotency_key=lambda t: f"key-{t}",
    )
    # The after-commit 500 stored the event; the retry with a fresh key meets the
    # identifier and is told it is a duplicate: still exactly one event in Stripe.
    assert outcome == "duplicate"
    held = [e for e in meter_events_in_stripe(emulator_url) if e["identifier"] == "smw_retry"]
    assert len(held) == 1


def test_stripe_failing_past_the_retries_raises_unavailable(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    gateway = world.gateway(RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002))
    fault(emulator_url, method="GET", path="/v1/prices/*", status=503, count=3)
    with pytest.raises(StripeUnavailable, match=r"after 3 attempts.*503"):
        gateway.price_meter(world.price_id)


def test_a_client_error_is_refused_without_retry(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    with pytest.raises(StripeRefused, match="price_nope") as info:
        world.gateway().price_meter("price_nope")
    assert info.value.code == "resource_missing"
