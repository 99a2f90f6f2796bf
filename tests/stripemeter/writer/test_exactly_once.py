"""The concrete double-billing and blocking cases of issue 9, each as it was measured.

Each test drives the real failure against the emulator and PostgreSQL and asserts what
Stripe holds afterwards. On the writer before the outbox, 1-3 ended with Stripe holding
more than the ledger (25 for 15) and 7 with every later hour stuck. Every case runs for
both writer transports: v1 (one meter event per request) and v2 (the meter event stream,
batches across customers), with the same identifiers and the same outbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
import requests

from stripemeter.errors import BindingConflict
from stripemeter.mappings.bindings import bind
from stripemeter.stripe.gateway import RetryPolicy
from stripemeter.writer import buckets as writer_buckets
from stripemeter.writer.outbox import OutboxRow
from stripemeter.writer.passes import drain, push_pending
from tests.stripemeter.conftest import start_api
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    fault,
    meter_events_in_stripe,
    settings_for,
)

METER_EVENTS = "/v1/billing/meter_events"
# Where each transport's meter events go (the path a fault is injected on).
SEND_PATH = {"v1": METER_EVENTS, "v2": "/v2/billing/meter_event_stream"}
# What an outbox row's outcome says once Stripe took it: v1 knows accepted from
# duplicate, the stream answers `{}` for both.
TOOK = {"v1": ("accepted", "duplicate"), "v2": ("streamed", "streamed")}


@pytest.fixture(params=["v1", "v2"])
def transport(request: pytest.FixtureRequest) -> str:
    """The writer transport the test runs with."""
    return str(request.param)


def stream_rejections(emulator_url: str) -> list[dict[str, str]]:
    """The stream events the emulator took but dropped, with why (duplicates among them)."""
    answer = requests.get(f"{emulator_url}/_emulator/meter_event_stream/rejections", timeout=10)
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, str]] = answer.json()["data"]
    return rows


class SimulatedCrash(BaseException):
    """The writer process dies at this point."""


@pytest.fixture(autouse=True)
def no_stage_hook() -> Iterator[None]:
    yield
    writer_buckets.STAGE_HOOK = None


def add_usage(db_url: str, world: StripeWorld, customer: str, hour: int, quantity: int) -> None:
    """Usage straight into the hour bucket (the ledger's own tests cover ingest)."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO usage_buckets (tenant_id, metric, customer_ref, hour_start, total,"
            " max_value, last_value, last_ts, event_count)"
            " VALUES (%(t)s, %(m)s, %(c)s, to_timestamp(%(h)s), %(q)s, %(q)s, %(q)s,"
            "  to_timestamp(%(h)s), 1)"
            " ON CONFLICT (tenant_id, metric, customer_ref, hour_start) DO UPDATE SET"
            " total = usage_buckets.total + EXCLUDED.total,"
            " max_value = greatest(usage_buckets.max_value, EXCLUDED.max_value),"
            " last_value = EXCLUDED.last_value, event_count = usage_buckets.event_count + 1,"
            " updated_at = now()",
            {"t": world.tenant_id, "m": world.metric, "c": customer, "h": hour, "q": quantity},
        )


def crash_at(stage: str) -> None:
    def hook(seen: str, row: OutboxRow) -> None:
        if seen == stage:
            raise SimulatedCrash(stage)

    writer_buckets.STAGE_HOOK = hook


def one_pass(
    world: StripeWorld, db_url: str, transport: str, retry: RetryPolicy | None = None
) -> None:
    """One writer pass in a 'process' of its own; a SimulatedCrash kills it."""
    conn = psycopg.connect(db_url)
    try:
        push_pending(
            conn,
            world.gateway(retry) if retry else world.gateway(),
            settings_for(world.url, db_url, WRITER_TRANSPORT=transport),
        )
    except SimulatedCrash:
        pass
    finally:
        writer_buckets.STAGE_HOOK = None
        conn.close()


def drained(world: StripeWorld, db_url: str, transport: str) -> None:
    with psycopg.connect(db_url) as conn:
        result = drain(
            conn, world.gateway(), settings_for(world.url, db_url, WRITER_TRANSPORT=transport)
        )
    assert result.errors == []


def total(world: StripeWorld, customer: str, meter_id: str | None = None) -> Decimal:
    frozen = world.frozen_time()
    start = world.period_start - world.period_start % 60
    end = frozen - frozen % 60 + 120
    return world.gateway().meter_total(meter_id or world.meter_id, customer, start, end)


def meter_events(world: StripeWorld) -> list[dict[str, str]]:
    return meter_events_in_stripe(world.url)


def hour_of(world: StripeWorld, hours_ago: int) -> int:
    frozen = world.frozen_time()
    return (frozen // HOUR - hours_ago) * HOUR


def test_lost_answer_then_more_usage_in_the_same_hour_bills_once(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer, hour = world.customers[0], hour_of(world, 2)
    add_usage(db_url, world, customer, hour, 10)
    crash_at("answered")  # Stripe accepted 10; the process died before recording it
    one_pass(world, db_url, transport)
    assert total(world, customer) == 10
    add_usage(db_url, world, customer, hour, 5)
    drained(world, db_url, transport)
    assert total(world, customer) == 15  # was 25: the retry re-sent 10 under a new identifier


def test_stored_then_500_on_every_attempt_then_more_usage_bills_once(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer, hour = world.customers[0], hour_of(world, 2)
    add_usage(db_url, world, customer, hour, 10)
    fault(
        emulator_url,
        method="POST",
        path=SEND_PATH[transport],
        status=500,
        count=3,
        after_commit=True,
    )
    one_pass(
        world, db_url, transport, RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002)
    )
    assert total(world, customer) == 10  # Stripe stored it, we were told 500 three times
    add_usage(db_url, world, customer, hour, 5)
    drained(world, db_url, transport)
    assert total(world, customer) == 15
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT value, status, outcome FROM meter_pushes ORDER BY seq"
        ).fetchall()
    accepted, duplicate = TOOK[transport]
    assert rows == [(Decimal(10), "sent", duplicate), (Decimal(5), "sent", accepted)]
    if transport == "v2":  # two retries and the next pass re-sent it; Stripe dropped each
        dropped = [r["code"] for r in stream_rejections(emulator_url)]
        assert dropped == ["resource_already_exists"] * 3


def test_deleting_and_recreating_a_mapping_sends_nothing_twice(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer, hour = world.customers[0], hour_of(world, 2)
    add_usage(db_url, world, customer, hour, 10)
    drained(world, db_url, transport)
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM price_mappings")
    add_usage(db_url, world, customer, hour, 5)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id)"
            " VALUES (%s, %s, 'sum', %s)",
            (world.tenant_id, world.metric, world.price_id),
        )
    drained(world, db_url, transport)
    assert total(world, customer) == 15  # was 25


def test_a_mapping_moved_from_sum_to_max_on_a_sum_meter_is_refused_not_pushed(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    add_usage(db_url, world, customer, hour_of(world, 3), 10)
    add_usage(db_url, world, customer, hour_of(world, 2), 3)
    drained(world, db_url, transport)
    assert total(world, customer) == 13
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE price_mappings SET aggregation = 'max'")
        conn.commit()
        settings = settings_for(world.url, db_url, WRITER_TRANSPORT=transport)
        result = push_pending(conn, world.gateway(), settings)
    assert total(world, customer) == 13  # was 20: max values went to the cached sum meter
    assert result.events_sent == 0
    assert any("needs a meter with formula 'last'" in e for e in result.errors), result.errors


def test_a_mapping_moved_to_another_price_pushes_to_the_new_meter(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    add_usage(db_url, world, customer, hour_of(world, 3), 10)
    drained(world, db_url, transport)
    other = world.client.v1.billing.meters.create(
        {
            "display_name": "API calls v2",
            "event_name": f"{world.event_name}_v2",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = world.client.v1.products.create({"name": "API v2"})
    price = world.client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": other.id},
        }
    )
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE price_mappings SET price_id = %s", (price.id,))
    add_usage(db_url, world, customer, hour_of(world, 2), 4)
    drained(world, db_url, transport)
    assert total(world, customer, other.id) == 14  # was 0: pushes kept the old meter
    assert total(world, customer) == 10  # the old meter keeps what it had, nothing more


def test_a_tenant_cannot_push_onto_another_tenants_stripe_customer(
    emulator_url: str, db_url: str, transport: str
) -> None:
    victim = build_world(emulator_url, db_url, customers=1)
    attacker = build_world(emulator_url, db_url, customers=1)
    theirs = victim.customers[0]
    add_usage(db_url, victim, theirs, hour_of(victim, 2), 7)
    drained(victim, db_url, transport)
    # The attacker maps its metric to the victim's price and sends usage for the
    # victim's customer id as its customerRef.
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE price_mappings SET price_id = %s WHERE tenant_id = %s",
            (victim.price_id, attacker.tenant_id),
        )
        with pytest.raises(BindingConflict):
            bind(conn, attacker.tenant_id, theirs, theirs)
    add_usage(db_url, attacker, theirs, hour_of(victim, 2), 1000)
    drained(attacker, db_url, transport)
    assert total(victim, theirs) == 7  # was 1,007
    with psycopg.connect(db_url) as conn:
        reports = conn.execute(
            "SELECT count(*) FROM meter_pushes WHERE tenant_id = %s", (attacker.tenant_id,)
        ).fetchone()
    assert reports == (0,)


def test_a_bucket_stripe_refuses_is_quarantined_and_later_hours_still_flow(
    emulator_url: str, db_url: str, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO usage_buckets (tenant_id, metric, customer_ref, hour_start, total,"
            " event_count) VALUES (%s, %s, %s, to_timestamp(%s), 1e20, 1)",
            (world.tenant_id, world.metric, customer, hour_of(world, 5)),
        )
    for hours_ago in (4, 3, 2):
        add_usage(db_url, world, customer, hour_of(world, hours_ago), 4)
    drained(world, db_url, transport)
    assert total(world, customer) == 12  # was 0: every later hour stayed pending
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT status, value, error IS NOT NULL FROM meter_pushes ORDER BY hour_start"
        ).fetchall()
    assert rows[0] == ("quarantined", Decimal("1e20"), True)
    assert [r[0] for r in rows[1:]] == ["sent", "sent", "sent"]
    drained(world, db_url, transport)  # and it is not proposed again on later passes
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM meter_pushes").fetchone() == (4,)
    # The refused usage is not silently gone: the writer's status shows it.
    with start_api(db_url, bypass=True) as api:
        status = requests.get(
            api.url("/v1/writer/status"), params={"tenantId": str(world.tenant_id)}, timeout=10
        ).json()
    assert (status["quarantinedPushes"], status["quarantinedUnits"]) == (1, "100000000000000000000")
    assert (status["pendingBuckets"], status["pendingUnits"]) == (0, "0")


def test_a_row_older_than_the_identifier_window_is_resent_only_if_stripe_lacks_it(
    emulator_url: str, db_url: str, transport: str
) -> None:
    stored, never_sent = (build_world(emulator_url, db_url, customers=1) for _ in range(2))
    landed, lost = stored.customers[0], never_sent.customers[0]
    add_usage(db_url, stored, landed, hour_of(stored, 2), 10)
    add_usage(db_url, never_sent, lost, hour_of(never_sent, 2), 6)
    settings = settings_for(emulator_url, db_url, WRITER_TRANSPORT=transport)
    # Stripe stores `landed`'s event and answers 500 to every attempt: the row stays pending.
    fault(
        emulator_url,
        method="POST",
        path=SEND_PATH[transport],
        status=500,
        count=3,
        after_commit=True,
    )
    with psycopg.connect(db_url) as conn:
        quick = RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.002)
        push_pending(conn, stored.gateway(quick), settings, stored.tenant_id)
    # `lost`'s row is committed, then the process dies before sending it.
    crash_at("before_send")
    conn = psycopg.connect(db_url)
    try:
        push_pending(conn, never_sent.gateway(), settings, never_sent.tenant_id)
    except SimulatedCrash:
        pass
    finally:
        writer_buckets.STAGE_HOOK = None
        conn.close()
    with psycopg.connect(db_url) as conn:
        pending = conn.execute(
            "SELECT customer_ref FROM meter_pushes WHERE status = 'pending'"
        ).fetchall()
        assert sorted(r[0] for r in pending) == sorted([landed, lost])
        # A day passes: Stripe may have forgotten both identifiers by now.
        conn.execute("UPDATE meter_pushes SET first_attempt_at = now() - interval '21 hours'")
    held_before = len(meter_events(stored))
    drained(stored, db_url, transport)
    assert (total(stored, landed), total(never_sent, lost)) == (10, 6)
    with psycopg.connect(db_url) as conn:
        outcomes = dict(conn.execute("SELECT customer_ref, outcome FROM meter_pushes").fetchall())
    # only the missing one was sent
    assert outcomes == {landed: "found", lost: TOOK[transport][0]}
    assert len(meter_events(stored)) - held_before == 1
