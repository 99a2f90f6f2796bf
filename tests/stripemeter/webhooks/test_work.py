"""The workers' side of webhooks on real PostgreSQL and the emulator: the LISTEN loop
wakes on `NOTIFY stripemeter_work` (and on connecting, and on its fallback interval),
a sweep runs each queued item once even when two sweeps race, and an item whose work
fails is marked failed with the reason while the polling writer still pushes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from stripemeter.db.pool import Pool, open_pool
from stripemeter.webhooks.receive import NOTIFY_CHANNEL, record
from stripemeter.webhooks.work import (
    MAX_ATTEMPTS,
    Done,
    listen_forever,
    next_due_s,
    retry_delay_s,
    run_pending,
)
from stripemeter.writer.passes import push_pending
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


@pytest.fixture
def pool(db_url: str) -> Iterator[Pool]:
    opened = open_pool(db_url, max_size=6, wait=True)
    yield opened
    opened.close()


def invoice_event(kind: str, customer: str) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "type": kind,
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"in_{uuid.uuid4().hex[:8]}",
                "customer": customer,
                "status": "draft" if kind == "invoice.created" else "open",
                "parent": {"subscription_details": {"subscription": "sub_x"}},
            }
        },
    }


def queue(db_url: str, event: dict[str, Any]) -> None:
    with psycopg.connect(db_url) as conn:
        assert record(conn, event).status == "pending"


def statuses(db_url: str) -> dict[str, tuple[str, int, str | None]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT event_id, status, attempts, error FROM stripe_webhook_events"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def with_usage(emulator_url: str, db_url: str, customers: int = 1) -> StripeWorld:
    world = build_world(emulator_url, db_url, customers=customers)
    frozen = world.frozen_time()
    events = [usage_event(world, c, frozen - HOUR, 4, f"{c}-u") for c in world.customers]
    with running_api(settings_for(emulator_url, db_url), db_url) as api:
        ingest(api, events)
    return world


def test_the_listener_runs_on_connect_on_each_notify_and_on_its_fallback(db_url: str) -> None:
    runs: list[float] = []
    ran = threading.Condition()

    def run() -> float | None:
        with ran:
            runs.append(time.monotonic())
            ran.notify_all()
        return None

    def wait_runs(n: int, timeout: float) -> float:
        with ran:
            assert ran.wait_for(lambda: len(runs) >= n, timeout=timeout), runs
            return runs[n - 1]

    stop = threading.Event()
    thread = threading.Thread(
        target=listen_forever, args=(db_url, stop, run), kwargs={"fallback_s": 3.0}, daemon=True
    )
    thread.start()
    try:
        wait_runs(1, 10)  # on connecting: whatever was queued while nobody listened
        time.sleep(0.2)
        sent = time.monotonic()
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("SELECT pg_notify(%s, 'evt_1')", (NOTIFY_CHANNEL,))
        woke = wait_runs(2, 2) - sent
        assert woke < 1.0, woke
        fallback = wait_runs(3, 5) - runs[1]  # nothing notified: the fallback interval
        assert 2.5 < fallback < 4.5, fallback
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    print(f"\nlistener woke {woke * 1000:.1f} ms after NOTIFY")


def test_two_racing_sweeps_run_each_item_once(emulator_url: str, db_url: str, pool: Pool) -> None:
    world = with_usage(emulator_url, db_url, customers=2)
    settings = settings_for(emulator_url, db_url)
    events = [invoice_event("invoice.created", c) for c in world.customers]
    events += [invoice_event("invoice.finalized", world.customers[0])]
    for event in events:
        queue(db_url, event)
    done: list[list[Done]] = [[], []]

    def sweep(n: int) -> None:
        with psycopg.connect(db_url) as claim:
            done[n] = run_pending(claim, pool, world.gateway(), settings)

    threads = [threading.Thread(target=sweep, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ran = [d.event_id for d in done[0] + done[1]]
    assert sorted(ran) == sorted(e["id"] for e in events)  # each once, by one sweep
    assert all(d.ok for d in done[0] + done[1])
    assert set(statuses(db_url).values()) == {("done", 1, None)}
    assert len(meter_events_in_stripe(emulator_url)) == 2  # one bucket per customer


def test_a_failing_flush_is_retried_after_a_backoff_then_given_up_to_polling(
    emulator_url: str, db_url: str, pool: Pool
) -> None:
    world = with_usage(emulator_url, db_url, customers=2)
    settings = settings_for(emulator_url, db_url)
    first, second = (invoice_event("invoice.created", c) for c in world.customers)
    queue(db_url, first)
    queue(db_url, second)
    fault(emulator_url, method="POST", path="/v1/billing/meter_events", status=500, count=1000)
    with psycopg.connect(db_url) as claim:
        done = run_pending(claim, pool, world.gateway(), settings)
        assert [(d.event_id, d.outcome) for d in done] == [
            (first["id"], "retry"),
            (second["id"], "retry"),
        ]
        status, attempts, error = statuses(db_url)[first["id"]]
        assert (status, attempts) == ("pending", 1)
        assert error is not None and "Stripe kept failing" in error
        assert run_pending(claim, pool, world.gateway(), settings) == []  # not due yet
        due = next_due_s(claim)
        assert due is not None and 0 < due <= retry_delay_s(1)

        # The last allowed attempt of the second item fails too: given up, `failed`.
        claim.execute(
            "UPDATE stripe_webhook_events SET attempts = %s, not_before = NULL WHERE event_id = %s",
            (MAX_ATTEMPTS - 1, second["id"]),
        )
        claim.commit()
        done = run_pending(claim, pool, world.gateway(), settings)
        assert [(d.event_id, d.outcome) for d in done] == [(second["id"], "failed")]
        assert statuses(db_url)[second["id"]][:2] == ("failed", MAX_ATTEMPTS)

        cleared = requests.delete(f"{emulator_url}/_emulator/faults", timeout=10)
        assert cleared.status_code == 200, cleared.text
        time.sleep(due + 0.1)
        done = run_pending(claim, pool, world.gateway(), settings)
        assert [(d.event_id, d.outcome) for d in done] == [(first["id"], "done")]
        assert statuses(db_url)[first["id"]] == ("done", 2, None)

    result = push_pending(pool, world.gateway(), settings)  # the polling fallback
    assert result.errors == []
    start, now = world.period_start, world.frozen_time()
    for customer in world.customers:
        assert world.stripe_total(customer, start - start % 60, now - now % 60 + 60) == 4


def test_the_listener_wakes_when_the_retry_its_run_announced_is_due(db_url: str) -> None:
    runs: list[float] = []
    stop = threading.Event()

    def run() -> float | None:
        runs.append(time.monotonic())
        return 0.3 if len(runs) == 1 else None

    thread = threading.Thread(
        target=listen_forever, args=(db_url, stop, run), kwargs={"fallback_s": 30.0}, daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(runs) == 2
        assert 0.25 < runs[1] - runs[0] < 1.0, runs
        time.sleep(0.5)
        assert len(runs) == 2  # then quiet until a notify or the 30 s fallback
    finally:
        stop.set()
        thread.join(timeout=5)
