"""The grace window: usage ingested after a period ended, while its renewal invoice is
still a draft (the emulator finalizes it an hour of clock time later, recounting its
usage), is pushed inside the closed period and billed on that invoice; a writer pass
whose Stripe reads show such a draft flushes the customer at once, without webhooks.

Real emulator through the `stripe` SDK, real PostgreSQL, usage through the real ingest
API, webhooks not configured.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest

from stripemeter.writer import buckets as writer_buckets
from stripemeter.writer.outbox import OutboxRow
from stripemeter.writer.passes import push_pending
from tests.stripemeter.writer.test_sub_unit_carry import (
    fractional,
    invoiced,
    learn_clocks,
    push_all,
)
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    ingest,
    meter_events_in_stripe,
    running_api,
    settings_for,
    usage_event,
)


@pytest.fixture
def sends() -> Iterator[list[tuple[str, str]]]:
    """(customerRef, metric) of every meter event Stripe answered, in order."""
    seen: list[tuple[str, str]] = []

    def hook(stage: str, row: OutboxRow) -> None:
        if stage == "answered":
            seen.append((row.series.customer_ref, row.series.metric))

    writer_buckets.STAGE_HOOK = hook
    try:
        yield seen
    finally:
        writer_buckets.STAGE_HOOK = None


def advance_clock(world: StripeWorld, clock_id: str, to: int) -> None:
    """Advance one clock of the world and wait until it is ready."""
    world.client.v1.test_helpers.test_clocks.advance(clock_id, {"frozen_time": to})
    deadline = time.monotonic() + 30
    while world.client.v1.test_helpers.test_clocks.retrieve(clock_id).status != "ready":
        assert time.monotonic() < deadline, f"clock {clock_id} did not become ready"
        time.sleep(0.05)


@pytest.mark.parametrize("transport", ["v1", "v2"])
def test_usage_ingested_while_the_renewal_is_a_draft_is_billed_on_it(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer, start, end = world.customers[0], world.period_start, world.period_end
    world.advance(end - 600)
    learn_clocks(world, db_url)
    settings = settings_for(emulator_url, db_url, WRITER_TRANSPORT=transport)
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, customer, end - 3 * HOUR, 5, "before")])
        push_all(world, db_url)
        world.advance(end + 600)  # the period ended: a draft renewal invoice
        (draft,) = [p for p in invoiced(world, customer) if p.start == start]
        assert (draft.status, draft.quantity) == ("draft", Decimal(5))
        # In the grace window: usage of the closed period, one whole unit carried.
        ingest(
            api,
            [
                usage_event(world, customer, end - 1800, 7, "grace"),
                fractional(world, customer, end - 1200, "0.5", "grace-half-1"),
                fractional(world, customer, end - 3 * HOUR + 60, "0.5", "grace-half-2"),
            ],
        )
        with psycopg.connect(db_url) as conn:
            result = push_pending(conn, world.gateway(), settings)
        assert (result.units_pushed, result.post_close, result.errors) == (8, 0, [])
        assert result.flushed == 1  # the pass saw the draft: the customer went at once
        world.advance(end + 2 * HOUR)  # finalized, usage recounted
    (final,) = [p for p in invoiced(world, customer) if p.start == start]
    assert (final.invoice_id, final.status, final.quantity) == (
        draft.invoice_id,
        "paid",
        Decimal(13),
    )
    stamps = sorted(int(e["timestamp"]) for e in meter_events_in_stripe(emulator_url))
    assert all(start <= ts < end for ts in stamps), stamps


def test_a_pass_that_sees_a_draft_pushes_every_metric_of_that_customer_at_once(
    emulator_url: str, db_url: str, sends: list[tuple[str, str]]
) -> None:
    world = build_world(emulator_url, db_url, customers=2, customers_per_clock=1)
    closing, other = world.customers
    start, end = world.period_start, world.period_end
    with psycopg.connect(db_url) as conn:  # a second metric billed on the same price
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account,"
            " price_id, currency, active) VALUES (%s, 'storage', 'sum', 'default', %s,"
            " 'usd', true)",
            (world.tenant_id, world.price_id),
        )
    advance_clock(world, world.clocks[0], end + 600)  # only `closing` is past its end
    learn_clocks(world, db_url)
    other_now = int(world.client.v1.test_helpers.test_clocks.retrieve(world.clocks[1]).frozen_time)
    hour = other_now // HOUR * HOUR - HOUR
    events = [
        usage_event(world, other, hour, 2, "o-api"),
        usage_event(world, other, hour, 3, "o-storage") | {"metric": "storage"},
        usage_event(world, closing, end - 1800, 4, "c-api"),
        usage_event(world, closing, end - 1800, 6, "c-storage") | {"metric": "storage"},
    ]
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        ingest(api, events)
    with psycopg.connect(db_url) as conn:
        result = push_pending(conn, world.gateway(), settings)
    assert result.errors == []
    # Both of the closing customer's metrics went one after the other, not mapping by
    # mapping after the other customer's (where a long pass would leave the draft).
    order = [customer for customer, _ in sends]
    first = order.index(closing)
    assert order[first : first + 2] == [closing, closing], sends
    assert {m for c, m in sends if c == closing} == {"api_calls", "storage"}
    assert (result.events_sent, result.flushed) == (4, 1)
    advance_clock(world, world.clocks[0], end + 2 * HOUR)
    (final,) = [p for p in invoiced(world, closing) if p.start == start]
    assert (final.status, final.quantity) == ("paid", Decimal(10))
