"""Stopping the workers while the gateway backs off from a failing Stripe: a shutdown,
not an outage. Real PostgreSQL, the emulator over real HTTP answering 500 or 429."""

from __future__ import annotations

import time

import psycopg
import pytest
import requests

from stripemeter.ops.metrics import REGISTRY
from stripemeter.workers import state as worker_state
from stripemeter.workers.loop import start_in_background
from tests.stripemeter.workers.test_workers import seed_usage
from tests.support.stripe_world import build_world, fault, settings_for

METER_EVENTS = "/v1/billing/meter_events"
FAULTED_ANSWERS = 50


def failed_passes() -> float:
    value = REGISTRY.get_sample_value("stripemeter_writer_failed_passes_total")
    return 0.0 if value is None else value


def faults_left(emulator_url: str) -> int:
    rules = requests.get(f"{emulator_url}/_emulator/faults", timeout=10).json()["faults"]
    return sum(int(rule["count"]) for rule in rules)


def outbox(db_url: str) -> list[tuple[str, int]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT status, attempts FROM meter_pushes ORDER BY seq").fetchall()
    return [(str(status), int(attempts)) for status, attempts in rows]


@pytest.mark.parametrize("status", [500, 429])
def test_a_stop_during_the_retry_backoff_records_no_failure(
    emulator_url: str, db_url: str, status: int
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    seed_usage(world, emulator_url, db_url, hours=1)
    fault(emulator_url, method="POST", path=METER_EVENTS, status=status, count=FAULTED_ANSWERS)
    before = failed_passes()
    # The default retry policy: six attempts over 4 s or more, so the stop lands in a backoff.
    settings = settings_for(emulator_url, db_url, RECONCILIATION_INTERVAL_MS=3_600_000)
    handle = start_in_background(settings, db_url)
    try:
        deadline = time.monotonic() + 30
        while faults_left(emulator_url) == FAULTED_ANSWERS and time.monotonic() < deadline:
            time.sleep(0.02)
        assert faults_left(emulator_url) < FAULTED_ANSWERS, "the writer never called Stripe"
    finally:
        stopped_at = time.monotonic()
        handle.stop()
    assert not handle.running
    assert time.monotonic() - stopped_at < 2.0, "the backoff did not end at the stop"
    # Stripe answered fewer than the retry policy's attempts before the stop.
    assert FAULTED_ANSWERS - faults_left(emulator_url) < 6
    with psycopg.connect(db_url) as conn:
        writer = worker_state.read_state(conn, "writer", world.tenant_id)
    assert writer is None, writer  # neither a failure nor a success: the pass did not end
    assert failed_passes() == before
    assert outbox(db_url) == [("pending", 0)]  # the push waits for the next writer
