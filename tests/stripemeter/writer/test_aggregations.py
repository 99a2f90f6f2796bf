"""`max` and `last` mappings pushed through a meter with formula `last`: Stripe's value
for the period equals the local max / last, also after late events."""

from __future__ import annotations

from decimal import Decimal

import psycopg

from stripemeter.jsonio import format_decimal
from stripemeter.reconciler.engine import reconcile
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


def push_and_reconcile(
    world: StripeWorld, db_url: str, events: list[dict[str, object]]
) -> dict[str, str]:
    settings = settings_for(world.url, db_url)
    with running_api(settings, db_url) as api:
        ingest(api, events)
    with psycopg.connect(db_url) as conn:
        assert drain(conn, world.gateway(), settings).errors == []
        reports = reconcile(conn, world.gateway(), settings)
    (report,) = reports
    return {
        "local_total": format_decimal(Decimal(report["local_total"])),
        "stripe_total": format_decimal(Decimal(report["stripe_total"])),
        "status": str(report["status"]),
    }


def test_last_mapping_holds_the_latest_value(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1, formula="last", aggregation="last")
    customer = world.customers[0]
    h1 = world.frozen_time() - 3 * HOUR
    h1 -= h1 % HOUR
    h2 = h1 + HOUR
    first = push_and_reconcile(
        world,
        db_url,
        [
            usage_event(world, customer, h1 + 60, 5, "a"),
            usage_event(world, customer, h1 + 120, 3, "b"),
            usage_event(world, customer, h2 + 60, 8, "c"),
        ],
    )
    assert first == {"local_total": "8", "stripe_total": "8", "status": "ok"}
    # A later reading in the same hour lowers the last value: pushed again, later.
    second = push_and_reconcile(world, db_url, [usage_event(world, customer, h2 + 600, 2, "d")])
    assert second == {"local_total": "2", "stripe_total": "2", "status": "ok"}


def test_max_mapping_pushes_the_running_maximum(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1, formula="last", aggregation="max")
    customer = world.customers[0]
    h1 = world.frozen_time() - 3 * HOUR
    h1 -= h1 % HOUR
    h2 = h1 + HOUR
    first = push_and_reconcile(
        world,
        db_url,
        [
            usage_event(world, customer, h1 + 60, 9, "a"),
            usage_event(world, customer, h2 + 60, 4, "b"),
        ],
    )
    assert first == {"local_total": "9", "stripe_total": "9", "status": "ok"}
    # A late, higher reading in the earlier hour raises every later running maximum.
    second = push_and_reconcile(world, db_url, [usage_event(world, customer, h1 + 300, 15, "c")])
    assert second == {"local_total": "15", "stripe_total": "15", "status": "ok"}
