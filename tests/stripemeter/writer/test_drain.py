"""The writer against the emulator over real HTTP and a real PostgreSQL.

Usage goes in through the real ingest API; the writer pushes it while the emulator
injects rate limits, server errors and after-commit failures; Stripe's totals must
equal the local ones exactly.
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import psycopg
import requests

from stripemeter.stripe.gateway import RetryPolicy
from stripemeter.writer.passes import PushResult, drain, push_pending
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


def inject_meter_event_faults(url: str) -> None:
    """429s, 500s and after-commit 500s (the event is stored, the client told it failed)."""
    fault(url, method="POST", path=METER_EVENTS, status=429, count=3)
    fault(url, method="POST", path=METER_EVENTS, status=500, count=2)
    fault(url, method="POST", path=METER_EVENTS, status=500, count=3, after_commit=True)
    fault(url, method="POST", path=METER_EVENTS, status=503, count=1)


def stripe_window(world: StripeWorld) -> tuple[int, int]:
    """A minute-aligned window holding every bucket pushed in these tests."""
    frozen = world.frozen_time()
    start = frozen - 60 * HOUR
    return start - start % HOUR, frozen - frozen % 60 + 120


def pushes_recorded(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM meter_pushes WHERE status = 'sent'").fetchone()
    assert row is not None
    return int(row[0])


def add(total: PushResult, one: PushResult) -> None:
    total.events_sent += one.events_sent
    total.duplicates += one.duplicates
    total.failures.extend(one.failures)


def test_ten_thousand_events_with_duplicates_late_events_and_faults_reach_stripe_exactly(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=3)
    settings = settings_for(emulator_url, db_url)
    rng = random.Random(20261124)
    frozen = world.frozen_time()
    first = frozen - 48 * HOUR

    unique: list[dict[str, Any]] = []
    for i in range(9_500):
        customer = world.customers[i % 3]
        ts = first + rng.randrange(48 * HOUR)
        unique.append(usage_event(world, customer, ts, rng.randint(1, 9), f"evt-{i}"))
    on_time, late = unique[:8_500], unique[8_500:]  # 10% of 10 000 arrive after the push
    dupes = [dict(e) for e in rng.sample(unique, 500)]  # 5% of 10 000 are resent
    wave1 = on_time + [d for d in dupes if d in on_time]
    wave2 = late + [d for d in dupes if d not in on_time]
    rng.shuffle(wave1)
    rng.shuffle(wave2)
    assert len(wave1) + len(wave2) == 10_000

    expected: dict[str, Decimal] = defaultdict(Decimal)
    for event in unique:
        expected[event["customerRef"]] += Decimal(event["quantity"])

    gateway = world.gateway()
    totals = PushResult()
    with running_api(settings, db_url) as api:
        accepted1, dup1 = ingest(api, wave1)
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()
        assert status["pendingBuckets"] > 0
        assert Decimal(status["pendingUnits"]) == sum(Decimal(e["quantity"]) for e in on_time)
        assert status["lastPushAt"] is None

        inject_meter_event_faults(emulator_url)
        with psycopg.connect(db_url) as conn:
            add(totals, drain(conn, gateway, settings))
        pushed_after_wave1 = pushes_recorded(db_url)

        accepted2, dup2 = ingest(api, wave2)  # late events land in hours already pushed
        inject_meter_event_faults(emulator_url)
        with psycopg.connect(db_url) as conn:
            add(totals, drain(conn, gateway, settings))

        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()

    assert (accepted1 + accepted2, dup1 + dup2) == (9_500, 500)
    assert totals.errors == []
    assert status["pendingBuckets"] == 0
    assert status["pendingUnits"] == "0"
    assert status["lastPushAt"] is not None
    assert status["lastError"] is None

    start, end = stripe_window(world)
    for customer in world.customers:
        assert world.stripe_total(customer, start, end) == expected[customer], customer

    in_stripe = meter_events_in_stripe(emulator_url)
    # Every event Stripe holds is one outbox row marked sent: nothing went twice.
    assert len(in_stripe) == pushes_recorded(db_url) == totals.events_sent + totals.duplicates
    # In each wave one push meets the faults in order (3 x 429, 2 x 500, 3 x after-commit
    # 500, 1 x 503): the first after-commit failure stored the event, every later
    # attempt met "identifier already used" -> one duplicate per wave, counted as success.
    assert totals.duplicates == 2
    assert pushes_recorded(db_url) > pushed_after_wave1  # late events were pushed as deltas
    ratio = len(in_stripe) / 10_000
    print(f"\nmeter events sent: {len(in_stripe)} for 10000 usage events (ratio {ratio:.4f})")
    assert len(in_stripe) < 600


def test_usage_after_the_clock_time_waits_for_the_clock(emulator_url: str, db_url: str) -> None:
    world = build_world(
        emulator_url, db_url, customers=1, clock_start_ago_s=6 * HOUR, frozen_ago_s=3 * HOUR
    )
    settings = settings_for(emulator_url, db_url)
    frozen = world.frozen_time()
    customer = world.customers[0]
    now = frozen + 3 * HOUR
    with running_api(settings, db_url) as api:
        ingest(
            api,
            [
                usage_event(world, customer, frozen - HOUR, 5, "before-clock"),
                usage_event(world, customer, now - 120, 7, "after-clock"),
            ],
        )
        with psycopg.connect(db_url) as conn:
            held = push_pending(conn, world.gateway(), settings)
        assert (held.events_sent, held.deferred, held.errors) == (1, 1, [])
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()
        assert (status["pendingBuckets"], status["pendingUnits"]) == (1, "7")

        world.advance(now - 60)
        with psycopg.connect(db_url) as conn:
            released = push_pending(conn, world.gateway(), settings)
        assert (released.events_sent, released.deferred) == (1, 0)
    timestamps = sorted(e["timestamp"] for e in meter_events_in_stripe(emulator_url))
    assert all(ts % HOUR == 0 or ts == now - 60 for ts in timestamps)
    start, end = stripe_window(world)
    assert world.stripe_total(customer, start, end) == 12


def test_stripe_failing_makes_readiness_degraded_and_loses_nothing(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=2)
    settings = settings_for(emulator_url, db_url)
    frozen = world.frozen_time()
    events = [
        usage_event(world, c, frozen - h * HOUR, 10 + h, f"{c}-{h}")
        for c in world.customers
        for h in range(1, 4)
    ]
    impatient = world.gateway(RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002))
    tenant = str(world.tenant_id)
    with running_api(settings, db_url) as api:
        ingest(api, events)
        fault(emulator_url, method="POST", path=METER_EVENTS, status=503, count=3)
        with psycopg.connect(db_url) as conn:
            failed = push_pending(conn, impatient, settings)
        assert failed.stripe_failing
        assert failed.events_sent == 0

        ready = requests.get(f"{api}/health/ready", timeout=10)
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded"
        assert body["checks"]["stripe_writer"]["status"] == "degraded"
        assert "503" in body["checks"]["stripe_writer"]["detail"]
        metrics = requests.get(f"{api}/metrics", timeout=10).text
        assert f'stripemeter_writer_stripe_failing{{tenant_id="{tenant}"}} 1.0' in metrics
        assert f'stripemeter_writer_pending_buckets{{tenant_id="{tenant}"}} 6.0' in metrics
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": tenant}, timeout=10
        ).json()
        assert status["pendingBuckets"] == 6
        assert "503" in status["lastError"]

        # Stripe recovers: the next pass pushes everything, readiness is healthy again.
        with psycopg.connect(db_url) as conn:
            recovered = push_pending(conn, impatient, settings)
        assert (recovered.events_sent, recovered.errors) == (6, [])
        ready = requests.get(f"{api}/health/ready", timeout=10).json()
        assert ready["status"] == "healthy"
        metrics = requests.get(f"{api}/metrics", timeout=10).text
        assert f'stripemeter_writer_stripe_failing{{tenant_id="{tenant}"}} 0.0' in metrics
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": tenant}, timeout=10
        ).json()
        assert (status["pendingBuckets"], status["lastError"]) == (0, None)
    start, end = stripe_window(world)
    for customer in world.customers:
        assert world.stripe_total(customer, start, end) == 11 + 12 + 13


def test_fractional_usage_is_pushed_in_whole_units_only(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    settings = settings_for(emulator_url, db_url)
    customer = world.customers[0]
    # The start of an hour, so the second event (a minute later) is in the same bucket.
    hour = (world.frozen_time() - 2 * HOUR) // HOUR * HOUR
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, customer, hour, 0, "a") | {"quantity": 1.75}])
        with psycopg.connect(db_url) as conn:
            first = push_pending(conn, world.gateway(), settings)
        ingest(api, [usage_event(world, customer, hour + 60, 0, "b") | {"quantity": 0.5}])
        with psycopg.connect(db_url) as conn:
            second = push_pending(conn, world.gateway(), settings)
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()
    assert (first.events_sent, second.events_sent) == (1, 1)
    values = sorted(int(e["payload"]["value"]) for e in meter_events_in_stripe(emulator_url))
    assert values == [1, 1]  # floor(1.75) = 1, then floor(2.25) - 1 = 1
    assert status["pendingBuckets"] == 0
    start, end = stripe_window(world)
    assert world.stripe_total(customer, start, end) == 2


def test_missing_or_wrong_meter_is_reported_not_pushed(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1, formula="sum", aggregation="max")
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, world.customers[0], world.frozen_time() - HOUR, 3, "x")])
        with psycopg.connect(db_url) as conn:
            result = push_pending(conn, world.gateway(), settings)
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()
    assert result.events_sent == 0
    assert len(result.errors) == 1
    assert "needs a meter with formula 'last'" in result.errors[0]
    assert "needs a meter with formula 'last'" in status["lastError"]
    assert status["pendingBuckets"] == 1
    assert status["consecutiveFailures"] == 0  # a refusal is reported, not an outage
    assert meter_events_in_stripe(emulator_url) == []


def test_buckets_beyond_stripes_35_days_are_marked_too_old(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    settings = settings_for(emulator_url, db_url)
    customer = world.customers[0]
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO usage_buckets (tenant_id, metric, customer_ref, hour_start, total,"
            " max_value, last_value, last_ts, event_count)"
            " VALUES (%s, %s, %s, date_trunc('hour', now() - interval '36 days'), 4, 4, 4,"
            " now() - interval '36 days', 1)",
            (world.tenant_id, world.metric, customer),
        )
        conn.commit()
        first = push_pending(conn, world.gateway(), settings)
        again = push_pending(conn, world.gateway(), settings)
        row = conn.execute("SELECT status, covered FROM push_state").fetchone()
    assert (first.too_old, first.events_sent, first.errors) == (1, 0, [])
    assert (again.too_old, again.events_sent) == (0, 0)  # not retried every pass
    assert row == ("too_old", Decimal(0))
    assert meter_events_in_stripe(emulator_url) == []
