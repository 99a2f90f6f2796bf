"""`count` mappings bill the number of usage events, exactly once, end to end.

The mapping is created through the real API, usage goes in through the real ingest API
(duplicates among it), the writer drains to the emulator over real HTTP while Stripe
fails after storing events, and the reconciler compares. Quantities never matter: a
count mapping bills how many distinct events arrived. The writer pushes event-count
deltas to a `sum` meter (`stripemeter.aggregations`), so a `count` meter is refused.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import psycopg
import requests

from stripemeter.reconciler.engine import reconcile
from stripemeter.writer.passes import drain
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    fault,
    ingest,
    meter_events_in_stripe,
    running_api,
    settings_for,
    usage_event,
)

METER_EVENTS = "/v1/billing/meter_events"


def _count_mapping(api: str, world: StripeWorld, db_url: str) -> dict[str, Any]:
    """Replace the world's own mapping row by a count mapping made through the API."""
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM price_mappings WHERE tenant_id = %s", (world.tenant_id,))
    answer = requests.post(
        f"{api}/v1/mappings",
        json={
            "tenantId": str(world.tenant_id),
            "metric": world.metric,
            "aggregation": "count",
            "priceId": world.price_id,
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _pending(api: str, world: StripeWorld) -> tuple[int, str]:
    status = requests.get(
        f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
    ).json()
    return status["pendingBuckets"], status["pendingUnits"]


def _report(db_url: str, world: StripeWorld) -> tuple[str, str, str, str]:
    settings = settings_for(world.url, db_url)
    with psycopg.connect(db_url) as conn:
        (report,) = reconcile(conn, world.gateway(), settings)
    return (
        str(Decimal(report["local_total"]).normalize()),
        str(Decimal(report["stripe_total"]).normalize()),
        str(Decimal(report["drift_abs"]).normalize()),
        str(report["status"]),
    )


def test_a_count_mapping_bills_each_distinct_event_once_whatever_its_quantity(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url)
    h1 = world.frozen_time() - 4 * HOUR
    h1 -= h1 % HOUR
    h2 = h1 + HOUR
    window = (h1, h2 + HOUR)
    first = [
        usage_event(world, customer, h1 + 60, 5, "a"),
        usage_event(world, customer, h1 + 120, 0, "b"),
        usage_event(world, customer, h1 + 180, 1000, "c"),
        usage_event(world, customer, h2 + 60, 7, "d"),
        usage_event(world, customer, h2 + 120, 7, "e"),
    ]
    with running_api(settings, db_url) as api:
        mapping = _count_mapping(api, world, db_url)
        assert mapping["aggregation"] == "count"
        # Each event once more: the ledger keeps the first, nothing more is counted.
        assert ingest(api, first) == (5, 0)
        assert ingest(api, first[:3]) == (0, 3)
        assert _pending(api, world) == (2, "5")
        # Stripe stores the first event, then answers 500: the retry is a duplicate.
        fault(
            emulator_url, method="POST", path=METER_EVENTS, status=500, count=2, after_commit=True
        )
        with psycopg.connect(db_url) as conn:
            pushed = drain(conn, world.gateway(), settings)
        assert (pushed.errors, pushed.events_sent + pushed.duplicates) == ([], 2)
        assert _pending(api, world) == (0, "0")
        assert world.stripe_total(customer, *window) == 5
        assert _report(db_url, world) == ("5", "5", "0", "ok")

        later = [
            usage_event(world, customer, h1 + 600, 3, "f"),  # late, in an hour already pushed
            usage_event(world, customer, h1 + 660, 3, "g"),
            usage_event(world, customer, h2 + 600, 1, "h"),
            first[3],  # a duplicate again
        ]
        assert ingest(api, later) == (3, 1)
        assert _pending(api, world) == (2, "3")
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
        assert _pending(api, world) == (0, "0")
    assert world.stripe_total(customer, *window) == 8
    assert _report(db_url, world) == ("8", "8", "0", "ok")
    # One meter event per new count in an hour: 3 and 2, then the late 2 and 1.
    values = sorted(
        (e["timestamp"], int(e["payload"]["value"])) for e in meter_events_in_stripe(emulator_url)
    )
    assert values == [(h1, 2), (h1, 3), (h2, 1), (h2, 2)]


def test_a_count_meter_is_refused_for_a_count_mapping(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1, formula="count", aggregation="count")
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url)
    hour = world.frozen_time() - 2 * HOUR
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, customer, hour, 4, "a")])
        with psycopg.connect(db_url) as conn:
            refused = drain(conn, world.gateway(), settings).errors
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()
    assert refused == [
        "stripe refused: mapping api_calls (count) needs a meter with formula 'sum' (the"
        " writer pushes event-count deltas that Stripe adds up; a 'count' meter would bill"
        f" each delta as 1), but price {world.price_id} uses meter {world.meter_id} with"
        " formula 'count'; map a price whose meter has formula 'sum'"
    ]
    assert status["lastError"] == refused[0]
    assert (status["pendingBuckets"], status["pendingUnits"]) == (1, "1")
    assert meter_events_in_stripe(emulator_url) == []
