"""A mapping replaced through `POST /v1/mappings` stops using the meter cached for its
old price or aggregation.

Bug (3) of issue 10: the meter cached on the mapping row was trusted whatever the
mapping had become, so usage after a move to another price went on to the old price's
meter, and a `sum` mapping turned into `max` pushed running maxima into a `sum` meter.
The cache is now only trusted for the price and aggregation it was resolved for
(`meter_resolved_for`, migration 0004).
"""

from __future__ import annotations

from decimal import Decimal

import psycopg
import requests

from stripemeter.writer.passes import drain
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    ingest,
    running_api,
    settings_for,
    usage_event,
)


def _sum_price(world: StripeWorld) -> tuple[str, str]:
    """A second `sum` meter and a metered price on it: (meter id, price id)."""
    meter = world.client.v1.billing.meters.create(
        {
            "display_name": "API calls, second price",
            "event_name": f"{world.event_name}_b",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = world.client.v1.products.create({"name": f"{world.event_name} B"})
    price = world.client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 7,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    return meter.id, price.id


def _replace(api: str, world: StripeWorld, price_id: str, aggregation: str) -> None:
    answer = requests.post(
        f"{api}/v1/mappings",
        json={
            "tenantId": str(world.tenant_id),
            "metric": world.metric,
            "aggregation": aggregation,
            "priceId": price_id,
        },
        timeout=30,
    )
    assert answer.status_code == 200, answer.text  # replaced, not created


def _held(world: StripeWorld, meter_id: str, start: int, end: int) -> Decimal:
    return world.gateway().meter_total(meter_id, world.customers[0], start, end)


def test_a_new_price_or_aggregation_is_not_pushed_through_the_old_cached_meter(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url)
    hour = world.frozen_time() - 3 * HOUR
    hour -= hour % HOUR
    window = (hour, hour + 2 * HOUR)
    meter_b, price_b = _sum_price(world)
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, customer, hour + 60, 4, "a")])
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
        assert _held(world, world.meter_id, *window) == 4

        _replace(api, world, price_b, "sum")
        ingest(api, [usage_event(world, customer, hour + HOUR + 60, 3, "b")])
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
            cached = conn.execute("SELECT meter_id FROM price_mappings").fetchone()
        # The old meter keeps what it had; the new one holds the metric's usage (a new
        # meter's series starts at 0, so the earlier hour is pushed there too).
        assert (_held(world, world.meter_id, *window), _held(world, meter_b, *window)) == (4, 7)
        assert cached == (meter_b,)

        _replace(api, world, price_b, "max")
        ingest(api, [usage_event(world, customer, hour + HOUR + 120, 9, "c")])
        with psycopg.connect(db_url) as conn:
            refused = drain(conn, world.gateway(), settings).errors
    assert len(refused) == 1 and "needs a meter with formula 'last'" in refused[0], refused
    assert (_held(world, world.meter_id, *window), _held(world, meter_b, *window)) == (4, 7)
