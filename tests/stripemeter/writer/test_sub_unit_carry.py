"""Sub-unit carry of `sum` mappings: fractions carry across the hours of a billing period,
so the whole units Stripe bills for a period are floor(period total), exactly once.

Real emulator through the `stripe` SDK, real PostgreSQL, usage through the real ingest
API (the property test writes through the ledger's own ingest, as the outbox model does).
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripemeter.aggregations import AGGREGATIONS
from stripemeter.clocks import record_clock
from stripemeter.db.pool import open_pool
from stripemeter.ingest import ledger
from stripemeter.ingest.validation import ValidEvent
from stripemeter.periods import ceil_minute
from stripemeter.stripe.gateway import InvoicePeriod
from stripemeter.writer.passes import drain, push_pending
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

EXAMPLES = int(os.environ.get("STRIPEMETER_MODEL_EXAMPLES", "2000"))


def fractional(world: StripeWorld, customer: str, ts: int, quantity: str, key: str) -> Any:
    """An ingest event with a fractional quantity (a JSON number)."""
    return usage_event(world, customer, ts, 0, key) | {"quantity": float(quantity)}


def whole_hours_before(world: StripeWorld, count: int) -> list[int]:
    """The starts of the `count` whole hours before the clock's hour, oldest first."""
    top = world.frozen_time() // HOUR * HOUR
    return [top - (count - n) * HOUR for n in range(count)]


def period_total(world: StripeWorld, customer: str, start: int, end: int) -> Decimal:
    """Stripe's meter summary for the customer over the period `[start, end)`."""
    return world.stripe_total(customer, ceil_minute(start), ceil_minute(end))


def sent_values(emulator_url: str) -> list[int]:
    return sorted(int(e["payload"]["value"]) for e in meter_events_in_stripe(emulator_url))


def learn_clocks(world: StripeWorld, db_url: str) -> None:
    """Record the customers' test clocks, as a binding's verification does, so that ingest
    judges their usage by clock time (the world binds them directly in the database)."""
    gateway = world.gateway()
    with psycopg.connect(db_url) as conn:
        for customer in world.customers:
            record_clock(conn, world.tenant_id, customer, gateway.customer_clock(customer))


def push_all(world: StripeWorld, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        result = drain(conn, world.gateway(), settings_for(world.url, db_url))
    assert result.errors == []


def invoiced(world: StripeWorld, customer: str) -> list[InvoicePeriod]:
    """The customer's invoice lines for the world's price, newest first."""
    gateway = world.gateway()
    item = gateway.find_item(customer, world.price_id, None)
    assert item is not None
    return gateway.invoice_periods(item.subscription_id, world.price_id)


def test_halves_in_two_hours_bill_one_unit(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    h1, h2 = whole_hours_before(world, 2)
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        ingest(api, [fractional(world, customer, h1 + 60, "0.5", "a")])
        with psycopg.connect(db_url) as conn:
            first = push_pending(conn, world.gateway(), settings)
        ingest(api, [fractional(world, customer, h2 + 60, "0.5", "b")])
        with psycopg.connect(db_url) as conn:
            second = push_pending(conn, world.gateway(), settings)
    assert (first.events_sent, second.events_sent) == (0, 1)
    assert sent_values(emulator_url) == [1]
    assert period_total(world, customer, world.period_start, world.period_end) == 1


def test_ten_tenths_of_point_three_across_ten_hours_bill_three(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        for n, hour in enumerate(whole_hours_before(world, 10)):
            ingest(api, [fractional(world, customer, hour + 120, "0.3", f"e{n}")])
            push_all(world, db_url)  # a pass after every arrival: each hour alone is 0
    assert sent_values(emulator_url) == [1, 1, 1]  # at 1.2, 2.1 and 3.0
    assert period_total(world, customer, world.period_start, world.period_end) == 3


def test_late_fraction_in_an_earlier_hour_adds_only_what_the_period_lacks(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    h1, h2 = whole_hours_before(world, 2)
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        ingest(
            api,
            [
                fractional(world, customer, h1 + 60, "0.6", "a"),
                fractional(world, customer, h2 + 60, "0.6", "b"),
            ],
        )
        push_all(world, db_url)  # 1.2: one unit, in h2 where the total crossed 1
        assert sent_values(emulator_url) == [1]
        # Late into h1: h1's share is now 1 and h2's 0, but h2 keeps what Stripe has.
        ingest(api, [fractional(world, customer, h1 + 120, "0.6", "c")])
        push_all(world, db_url)  # 1.8: still one unit, nothing sent
        assert sent_values(emulator_url) == [1]
        ingest(api, [fractional(world, customer, h1 + 180, "0.3", "d")])
        push_all(world, db_url)  # 2.1: the second unit, in h1 (the hour that lacks one)
    events = meter_events_in_stripe(emulator_url)
    assert sorted((int(e["timestamp"]), int(e["payload"]["value"])) for e in events) == [
        (h1, 1),
        (h2, 1),
    ]
    assert len({e["identifier"] for e in events}) == 2
    assert period_total(world, customer, world.period_start, world.period_end) == 2
    with psycopg.connect(db_url) as conn:
        covered = conn.execute(
            "SELECT sum(covered), sum(source_value) FROM push_state WHERE customer_ref = %s",
            (customer,),
        ).fetchone()
    assert covered == (Decimal(2), Decimal("2.1"))


def test_a_periods_final_remainder_is_not_carried_into_the_next(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    start, end = world.period_start, world.period_end
    last_hour = (end - 1) // HOUR * HOUR  # the period's last bucket (its start is inside)
    world.advance(end - 60)
    learn_clocks(world, db_url)
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        ingest(
            api,
            [
                fractional(world, customer, last_hour - HOUR + 60, "1.4", "a"),
                fractional(world, customer, last_hour + 1, "0.2", "b"),
            ],
        )
        push_all(world, db_url)
        world.advance(end + 2 * HOUR)  # the renewal invoice is finalized
        next_hour = -(-end // HOUR) * HOUR  # the next period's first whole hour
        ingest(api, [fractional(world, customer, next_hour + 60, "0.6", "c")])
        push_all(world, db_url)
    # Period 1: 1.6 -> 1 unit billed, 0.6 left over; period 2: 0.6 -> nothing (not 1.2).
    assert sent_values(emulator_url) == [1]
    assert period_total(world, customer, start, end) == 1
    assert period_total(world, customer, end, world.frozen_time()) == 0
    closed = [p for p in invoiced(world, customer) if p.start == start]
    assert [(p.quantity, p.finalized) for p in closed] == [(Decimal(1), True)]
    with psycopg.connect(db_url) as conn:
        uncovered = conn.execute(
            "SELECT count(*) FROM usage_buckets b LEFT JOIN push_state s USING (tenant_id,"
            " metric, customer_ref, hour_start) WHERE b.customer_ref = %s"
            " AND (s.source_value IS DISTINCT FROM b.total)",
            (customer,),
        ).fetchone()
    assert uncovered == (0,)  # every bucket accounted for: nothing keeps being retried


def test_after_an_upgrade_the_writer_pushes_what_per_hour_flooring_left_behind(
    emulator_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    h1, h2, h3 = whole_hours_before(world, 3)
    settings = settings_for(emulator_url, db_url)
    carrying = AGGREGATIONS["sum"]
    # The writer before sub-unit carry: each hour floored alone, series record floors.
    monkeypatch.setitem(AGGREGATIONS, "sum", replace(carrying, carries_fractions=False))
    with running_api(settings, db_url) as api:
        ingest(
            api,
            [
                fractional(world, customer, h1 + 60, "0.5", "a"),
                fractional(world, customer, h2 + 60, "0.5", "b"),
                fractional(world, customer, h3 + 60, "1.5", "c"),
            ],
        )
    push_all(world, db_url)
    assert period_total(world, customer, world.period_start, world.period_end) == 1
    monkeypatch.setitem(AGGREGATIONS, "sum", carrying)  # the upgrade
    with psycopg.connect(db_url) as conn:
        upgraded = push_pending(conn, world.gateway(), settings)
        again = push_pending(conn, world.gateway(), settings)
    assert (upgraded.events_sent, upgraded.units_pushed, again.events_sent) == (1, 1, 0)
    assert period_total(world, customer, world.period_start, world.period_end) == 2


# -- the property ------------------------------------------------------------------------

PERIOD_HOURS = 4  # hours used at the end of period 1 and at the start of period 2
quantities = st.sampled_from(
    [Decimal("0.1"), Decimal("0.25"), Decimal("0.3"), Decimal("0.5"), Decimal("0.7"), Decimal(1)]
)
arrival = st.tuples(st.just("usage"), st.integers(0, PERIOD_HOURS - 1), quantities)
writer_pass = st.tuples(st.just("pass"), st.just(0), st.just(Decimal(0)))
phase = st.lists(st.one_of(arrival, writer_pass), min_size=1, max_size=8)


@pytest.mark.timeout(1800)
def test_each_period_bills_floor_of_its_total_once_whatever_the_interleaving(
    emulator_url: str, db_url: str
) -> None:
    pool = open_pool(db_url, max_size=1, wait=True)
    # Each example builds a world and advances a month (~1 s): at most 40 of them, so the
    # default 2,000 of the cheaper models does not make this one take 10+ minutes.
    examples = max(1, min(EXAMPLES // 3, 40))

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(first=phase, second=phase, late=phase)
    def one_schedule(
        first: list[tuple[str, int, Decimal]],
        second: list[tuple[str, int, Decimal]],
        late: list[tuple[str, int, Decimal]],
    ) -> None:
        with psycopg.connect(db_url) as conn:
            conn.execute("UPDATE price_mappings SET active = false")
        world = build_world(emulator_url, db_url, customers=1)
        customer, start, end = world.customers[0], world.period_start, world.period_end
        settings_ = settings_for(emulator_url, db_url)
        keys = (f"{world.tenant_id}-{n}" for n in range(10**6))
        totals: dict[int, Decimal] = {}  # exact usage per period start

        def run(steps: list[tuple[str, int, Decimal]], hours: list[int], period: int) -> None:
            for kind, index, quantity in steps:
                if kind == "pass":
                    with psycopg.connect(db_url) as conn:
                        assert push_pending(conn, world.gateway(), settings_).errors == []
                    continue
                hour = hours[index]
                event = ValidEvent(
                    tenant_id=world.tenant_id,
                    metric=world.metric,
                    customer_ref=customer,
                    quantity=quantity,
                    ts=datetime.fromtimestamp(hour, UTC),
                    idempotency_key=next(keys),
                    resource_id=None,
                    source=None,
                    meta_json=None,
                )
                outcome = ledger.ingest(
                    pool, [event], request_id="carry", header_key=None, scope="t", body_sha256=""
                )
                assert outcome.accepted == 1
                totals[period] = totals.get(period, Decimal(0)) + quantity

        top = (end - 1) // HOUR * HOUR
        first_hours = [top - (PERIOD_HOURS - 1 - n) * HOUR for n in range(PERIOD_HOURS)]
        world.advance(end - 1)  # the last second of period 1: all its hours are pushable
        run(first, first_hours, start)
        push_all(world, db_url)
        world.advance(end + (PERIOD_HOURS + 2) * HOUR)  # period 1 finalized
        base = -(-end // HOUR) * HOUR
        second_hours = [base + n * HOUR for n in range(PERIOD_HOURS)]
        run(second, second_hours, end)
        closed_before = dict(totals)
        run(late, first_hours, start)  # after finalization: kept, reported, never pushed
        push_all(world, db_url)

        def whole(value: Decimal) -> Decimal:
            return value.to_integral_value(rounding=ROUND_FLOOR)

        p1 = period_total(world, customer, start, end)
        p2 = period_total(world, customer, end, world.frozen_time() + 1)
        assert p1 == whole(closed_before.get(start, Decimal(0))), (first, second, late)
        assert p2 == whole(totals.get(end, Decimal(0))), (first, second, late)
        (line,) = [p for p in invoiced(world, customer) if p.start == start]
        assert line.quantity == p1
        events = [
            e for e in meter_events_in_stripe(emulator_url) if e["event_name"] == world.event_name
        ]
        assert len({e["identifier"] for e in events}) == len(events)
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT count(*) FILTER (WHERE status <> 'sent'),"
                " count(*) FILTER (WHERE outcome IS DISTINCT FROM 'accepted'),"
                " count(DISTINCT identifier) = count(*)"
                " FROM meter_pushes WHERE tenant_id = %s",
                (world.tenant_id,),
            ).fetchone()
        # Every row sent, each accepted at its first send: no identifier went twice.
        assert rows == (0, 0, True)

    try:
        one_schedule()
    finally:
        pool.close()
