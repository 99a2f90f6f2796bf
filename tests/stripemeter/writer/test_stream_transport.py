"""The v2 transport's own behaviour: batches across customers, the session token's life,
a refused request split down to the refused row. Real emulator (counting its requests),
real PostgreSQL, the real SDK; the shared exactly-once cases are in test_exactly_once."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
import requests

from stripemeter.stripe.stream import RENEW_BEFORE_S, SESSION_TTL_S, MeterEventSessions
from stripemeter.writer.passes import drain, push_customer_now
from tests.stripemeter.writer.test_exactly_once import add_usage, hour_of, total
from tests.support.emulator import RequestCounts, counting_emulator, requests_to
from tests.support.stripe_world import HOUR, StripeWorld, build_world, fault, settings_for

STREAM = "/v2/billing/meter_event_stream"
SESSION = "/v2/billing/meter_event_session"
V1_EVENTS = "/v1/billing/meter_events"


@pytest.fixture
def counted() -> Iterator[tuple[str, RequestCounts]]:
    """An emulator of its own for the test, with its request counts."""
    with counting_emulator() as served:
        yield served


def streamed_drain(world: StripeWorld, db_url: str, gateway: object | None = None) -> None:
    with psycopg.connect(db_url) as conn:
        result = drain(
            conn,
            gateway or world.gateway(),  # type: ignore[arg-type]
            settings_for(world.url, db_url, WRITER_TRANSPORT="v2"),
        )
    assert result.errors == []


def outbox(db_url: str) -> list[tuple[str, str, Decimal]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT status, coalesce(outcome, ''), value FROM meter_pushes ORDER BY seq"
        ).fetchall()
    return [(r[0], r[1], Decimal(r[2])) for r in rows]


def test_101_buckets_of_three_customers_go_in_two_stream_requests(
    counted: tuple[str, RequestCounts], db_url: str
) -> None:
    url, counts = counted
    world = build_world(url, db_url, customers=3, clock_start_ago_s=40 * HOUR)
    expected = dict.fromkeys(world.customers, 0)
    buckets = 0
    for hours_ago in range(1, 35):
        for customer in world.customers:
            if buckets == 101:
                break
            add_usage(db_url, world, customer, hour_of(world, hours_ago), hours_ago)
            expected[customer] += hours_ago
            buckets += 1
    streamed_drain(world, db_url)
    assert requests_to(counts, STREAM, 200) == 2  # 100 + 1, across the three customers
    assert requests_to(counts, SESSION, 200) == 1  # one token for the whole drain
    assert requests_to(counts, V1_EVENTS) == 0
    assert {c: total(world, c) for c in world.customers} == expected
    assert [(s, o) for s, o, _ in outbox(db_url)] == [("sent", "streamed")] * 101


def test_an_expired_session_token_is_renewed_and_the_batch_sent_again(
    counted: tuple[str, RequestCounts], db_url: str
) -> None:
    url, counts = counted
    world = build_world(url, db_url, customers=2)
    gateway = world.gateway()  # one gateway, one cached token, as in a writer process
    first, second = world.customers
    add_usage(db_url, world, first, hour_of(world, 3), 4)
    streamed_drain(world, db_url, gateway)
    # Stripe ends the session (15 minutes went by) while the writer still holds it.
    assert requests.post(f"{url}/_emulator/meter_event_stream/expire", timeout=10).ok
    add_usage(db_url, world, second, hour_of(world, 2), 6)
    add_usage(db_url, world, first, hour_of(world, 2), 1)
    streamed_drain(world, db_url, gateway)
    assert requests_to(counts, STREAM, 401) == 1  # the expired token, refused once
    assert requests_to(counts, SESSION, 200) == 2  # renewed, then the batch went
    assert requests_to(counts, STREAM, 200) == 2
    assert (total(world, first), total(world, second)) == (5, 6)
    assert gateway.stream_sessions.created == 2


def test_a_token_near_its_expiry_is_renewed_before_it_is_used(
    counted: tuple[str, RequestCounts], db_url: str
) -> None:
    url, counts = counted
    world = build_world(url, db_url, customers=1)
    customer = world.customers[0]
    now = [1_000_000.0]
    gateway = world.gateway()
    gateway.stream_sessions = MeterEventSessions(clock=lambda: now[0])
    add_usage(db_url, world, customer, hour_of(world, 3), 2)
    streamed_drain(world, db_url, gateway)
    now[0] += SESSION_TTL_S - RENEW_BEFORE_S - 1  # still valid, but not for long enough
    add_usage(db_url, world, customer, hour_of(world, 2), 3)
    streamed_drain(world, db_url, gateway)
    assert requests_to(counts, SESSION, 200) == 1  # ...so far the first token served
    now[0] += 2
    add_usage(db_url, world, customer, hour_of(world, 1), 4)
    streamed_drain(world, db_url, gateway)
    assert requests_to(counts, SESSION, 200) == 2  # renewed before use
    assert requests_to(counts, STREAM, 401) == 0  # no request ever went out on a stale one
    assert total(world, customer) == 9


def test_a_refused_batch_is_split_until_the_refused_row_is_quarantined_alone(
    counted: tuple[str, RequestCounts], db_url: str
) -> None:
    url, counts = counted
    world = build_world(url, db_url, customers=2)
    first, second = world.customers
    usage = [(first, 5, 1), (second, 4, 2), (first, 3, 3), (second, 2, 4)]
    for customer, hours_ago, quantity in usage:
        add_usage(db_url, world, customer, hour_of(world, hours_ago), quantity)
    # Stripe refuses the next three requests: [r1 r2 r3 r4], then [r1 r2], then [r1].
    fault(url, method="POST", path=STREAM, status=400, count=3)
    streamed_drain(world, db_url)
    assert requests_to(counts, STREAM, 400) == 3
    assert requests_to(counts, STREAM, 200) == 2  # [r2] and [r3 r4]
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT status, coalesce(outcome, ''), value, customer_ref, error"
            " FROM meter_pushes ORDER BY seq"
        ).fetchall()
    refused = rows[0]  # the oldest row, alone in the third refused request
    assert refused[0] == "quarantined" and "Injected failure (400)" in refused[4]
    assert [(r[0], r[1]) for r in rows[1:]] == [("sent", "streamed")] * 3
    expected = {first: Decimal(4), second: Decimal(6)}
    expected[refused[3]] -= refused[2]
    assert {c: total(world, c) for c in world.customers} == expected
    streamed_drain(world, db_url)  # and it is not sent again
    assert requests_to(counts, STREAM) == 5


def test_a_value_stripe_would_drop_is_quarantined_and_the_rest_of_the_batch_goes(
    counted: tuple[str, RequestCounts], db_url: str
) -> None:
    url, counts = counted
    world = build_world(url, db_url, customers=2)
    first, second = world.customers
    add_usage(db_url, world, first, hour_of(world, 3), 10**15)  # 16 digits: over Stripe's 15
    add_usage(db_url, world, second, hour_of(world, 3), 7)
    add_usage(db_url, world, first, hour_of(world, 2), 5)
    streamed_drain(world, db_url)
    assert requests_to(counts, STREAM) == 1
    assert sorted(outbox(db_url)) == [  # rows are staged in customer-id order, which is random
        ("quarantined", "", Decimal(10**15)),
        ("sent", "streamed", Decimal(5)),
        ("sent", "streamed", Decimal(7)),
    ]
    assert (total(world, first), total(world, second)) == (5, 7)
    rejected = requests.get(f"{url}/_emulator/meter_event_stream/rejections", timeout=10)
    assert rejected.json()["data"] == []  # nothing went that Stripe would have dropped


def test_a_customer_pushed_now_goes_alone_on_the_stream(
    counted: tuple[str, RequestCounts], db_url: str
) -> None:
    url, counts = counted
    world = build_world(url, db_url, customers=2)
    first, second = world.customers
    add_usage(db_url, world, first, hour_of(world, 2), 3)
    add_usage(db_url, world, second, hour_of(world, 2), 8)
    settings = settings_for(url, db_url, WRITER_TRANSPORT="v2")
    with psycopg.connect(db_url) as conn:  # what invoice.created asks for `first`
        result = push_customer_now(conn, world.gateway(), settings, world.tenant_id, first)
    assert (result.events_sent, result.errors) == (1, [])
    assert requests_to(counts, STREAM, 200) == 1
    assert (total(world, first), total(world, second)) == (3, 0)
    streamed_drain(world, db_url)
    assert (total(world, first), total(world, second)) == (3, 8)
