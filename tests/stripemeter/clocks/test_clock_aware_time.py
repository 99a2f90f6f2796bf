"""Clock-aware time end to end: a customer on a Stripe test clock lives on the clock's
frozen_time for ingest's future bound, the writer and the reconciler; everyone else on the
wall clock. Real emulator through the stripe SDK, real API over HTTP, real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import requests

from stripemeter.api.app import create_app
from stripemeter.clocks import ClockReading, record_clock, record_clock_time
from stripemeter.config import Settings
from stripemeter.writer.passes import drain
from tests.stripemeter.webhooks.test_webhook_driven_work import wait_for
from tests.support.servers import free_port, serve_asgi
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    running_api,
    settings_for,
    usage_event,
)

DAY = 24 * HOUR


def frozen_known(db_url: str, customer: str) -> int | None:
    """The frozen_time the service holds for the customer (unix), or None."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT frozen_time FROM customer_clocks WHERE stripe_customer_id = %s", (customer,)
        ).fetchone()
    return None if row is None or row[0] is None else int(row[0].timestamp())


def rebind_through_api(api: str, world: StripeWorld, db_url: str) -> None:
    """Replace build_world's SQL bindings with the API's verified ones (which read the
    customer's clock, as an operator's binding does)."""
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM customer_bindings WHERE tenant_id = %s", (world.tenant_id,))
    for customer in world.customers:
        answer = requests.put(
            f"{api}/v1/customers/{customer}/binding",
            json={"tenantId": world.tenant_id, "stripeCustomerId": customer},
            timeout=30,
        )
        assert answer.status_code == 201, answer.text


def post_events(api: str, events: list[dict[str, Any]]) -> requests.Response:
    return requests.post(f"{api}/v1/events/ingest", json={"events": events}, timeout=30)


@contextmanager
def api_with_webhooks(world: StripeWorld, db_url: str, **extra: Any) -> Iterator[str]:
    """The API with the emulator delivering test_helpers.test_clock.ready to it."""
    port = free_port()
    endpoint = world.client.v1.webhook_endpoints.create(
        {
            "url": f"http://127.0.0.1:{port}/v1/stripe/webhooks",
            "enabled_events": ["test_helpers.test_clock.ready"],
        }
    )
    settings: Settings = settings_for(
        world.url, db_url, STRIPE_WEBHOOK_SECRET=str(endpoint.secret), **extra
    )
    try:
        with serve_asgi(create_app(settings, db_url=db_url), port=port) as api:
            yield api
    finally:
        world.client.v1.webhook_endpoints.delete(endpoint.id)


def test_after_a_35_day_advance_a_clock_customer_ingests_at_clock_time_and_others_do_not(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1, clock_start_ago_s=2 * HOUR)
    customer = world.customers[0]
    with api_with_webhooks(world, db_url) as api:
        rebind_through_api(api, world, db_url)
        assert frozen_known(db_url, customer) == world.frozen_time()  # learnt at binding
        target = world.frozen_time() + 35 * DAY
        world.advance(target)
        wait_for("the ready webhook", lambda: frozen_known(db_url, customer) == target or None)

        on_clock = post_events(api, [usage_event(world, customer, target, 4, "late-1")])
        assert on_clock.status_code == 200, on_clock.text
        assert on_clock.json()["accepted"] == 1

        unbound = usage_event(world, "cus_not_bound", target, 4, "late-2")
        refused = post_events(api, [unbound])
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["code"] == "future_timestamp"
        assert refused.json()["error"]["field"] == "events[0].ts"


def test_an_event_past_the_known_clock_time_rereads_the_clock_once_before_refusing(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1, clock_start_ago_s=2 * HOUR)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url, MAX_FUTURE_SKEW_SECONDS=300)
    with running_api(settings, db_url) as api:  # no webhooks: the service is not told
        rebind_through_api(api, world, db_url)
        before = world.frozen_time()
        target = before + 35 * DAY
        world.advance(target)
        assert frozen_known(db_url, customer) == before

        accepted = post_events(api, [usage_event(world, customer, target + 200, 2, "k-1")])
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["accepted"] == 1
        assert frozen_known(db_url, customer) == target  # the one Stripe read, recorded

        beyond = post_events(api, [usage_event(world, customer, target + 301, 2, "k-2")])
        assert beyond.status_code == 400, beyond.text
        error = beyond.json()["error"]
        assert error["code"] == "future_timestamp"
        assert error["field"] == "events[0].ts"
        assert "MAX_FUTURE_SKEW_SECONDS" in error["message"]
        with psycopg.connect(db_url) as conn:
            stored = conn.execute(
                "SELECT count(*) FROM events WHERE customer_ref = %s", (customer,)
            ).fetchone()
        assert stored == (1,)


def test_the_clock_reread_is_rate_limited_per_customer(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1, clock_start_ago_s=2 * HOUR)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url, CLOCK_REREAD_INTERVAL_S=3600)
    with running_api(settings, db_url) as api:
        rebind_through_api(api, world, db_url)
        before = world.frozen_time()
        far = post_events(api, [usage_event(world, customer, before + DAY, 1, "r-1")])
        assert far.status_code == 400  # re-read: the clock is where it was
        world.advance(before + 2 * DAY)
        again = post_events(api, [usage_event(world, customer, before + DAY, 1, "r-2")])
        assert again.status_code == 400, again.text  # within the interval: no second read
        assert frozen_known(db_url, customer) == before


def test_a_clock_advanced_cycle_after_cycle_is_followed_at_once_despite_the_rate_limit(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1, clock_start_ago_s=2 * HOUR)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url, CLOCK_REREAD_INTERVAL_S=3600)
    with running_api(settings, db_url) as api:  # no webhooks: only re-reads tell it
        rebind_through_api(api, world, db_url)
        start = world.frozen_time()
        for cycle in range(1, 4):  # three advances well inside one rate-limit interval
            target = start + cycle * 31 * DAY
            world.advance(target)
            answer = post_events(api, [usage_event(world, customer, target - 60, 1, f"c-{cycle}")])
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 1
            assert frozen_known(db_url, customer) == target
        # A read that learns nothing still holds the next back for the interval.
        future = post_events(api, [usage_event(world, customer, target + DAY, 1, "f-1")])
        assert future.status_code == 400
        world.advance(target + 2 * DAY)
        held = post_events(api, [usage_event(world, customer, target + DAY, 1, "f-2")])
        assert held.status_code == 400, held.text
        assert frozen_known(db_url, customer) == target


def test_frozen_time_follows_the_ready_webhook_and_never_moves_back(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=2, clock_start_ago_s=2 * HOUR)
    with api_with_webhooks(world, db_url) as api:
        rebind_through_api(api, world, db_url)
        target = world.frozen_time() + 3 * DAY
        world.advance(target)
        for customer in world.customers:
            wait_for("the webhook", lambda c=customer: frozen_known(db_url, c) == target or None)
        with psycopg.connect(db_url) as conn:
            kinds = conn.execute(
                "SELECT action, status FROM stripe_webhook_events"
                " WHERE type = 'test_helpers.test_clock.ready'"
            ).fetchall()
            assert kinds and set(kinds) == {("clock", "done")}
            # An older reading, late: by the webhook path and by a Stripe read.
            assert record_clock_time(conn, world.clock_id, target - DAY) == 2
            record_clock(
                conn,
                world.tenant_id,
                world.customers[0],
                ClockReading(world.clock_id, target - 2 * DAY),
            )
            conn.commit()
    for customer in world.customers:
        assert frozen_known(db_url, customer) == target


def test_the_reconciler_closes_and_measures_a_clock_customers_periods_on_clock_time(
    emulator_url: str, db_url: str
) -> None:
    # The clock starts 2 h ago: on the wall clock the first period is open for a month.
    world = build_world(emulator_url, db_url, customers=1, clock_start_ago_s=2 * HOUR)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url)
    with running_api(settings, db_url) as api:
        rebind_through_api(api, world, db_url)
        first_start, first_end = world.period_start, world.period_end
        ok = post_events(api, [usage_event(world, customer, world.frozen_time() - 60, 3, "p-1")])
        assert ok.status_code == 200, ok.text
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
        now_on_clock = first_end + 5 * HOUR  # past the period end and the grace hour
        world.advance(now_on_clock)
        assert first_end > time.time() + 20 * DAY  # the wall clock is still inside it
        # Usage of the second period, 3 h into it on the clock (days ahead of real time).
        second = post_events(api, [usage_event(world, customer, now_on_clock - HOUR, 7, "p-2")])
        assert second.status_code == 200, second.text
        with psycopg.connect(db_url) as conn:
            pushed = drain(conn, world.gateway(), settings)
        assert pushed.errors == [] and pushed.events_sent == 1 and pushed.deferred == 0
        answer = requests.post(
            f"{api}/v1/reconciliation/run",
            params={"wait": "true"},
            json={"tenantId": world.tenant_id},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        reports = {r["periodStart"]: r for r in answer.json()["reports"]}

        def at(ts: int) -> str:
            return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        closed, open_now = reports[at(first_start)], reports[at(first_end)]
        assert (closed["final"], closed["local"], closed["invoiceQuantity"]) == (True, "3", "3")
        assert closed["status"] == "ok"
        # Measured up to the clock's now, not the wall clock's: Stripe's 7 units are seen.
        assert (open_now["final"], open_now["local"], open_now["stripe"]) == (False, "7", "7")
        assert open_now["status"] == "ok"
        assert frozen_known(db_url, customer) == now_on_clock
