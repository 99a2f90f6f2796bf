"""Chaos: usage flowing, writer processes killed with SIGKILL, Stripe failing at random.

Twelve customers (four tenants of three: a test clock holds at most three) get usage for
40 s through the real insert-and-count; two writer processes
(`python -m stripemeter.workers.loop`, a 200 ms writer loop) are killed with SIGKILL and
restarted in turn every 3 s; the emulator is told to fail meter-event requests
several times a second (500, 503, 429, and 500 *after* storing the event). After the
storm one clean drain runs, and Stripe's meter summary must equal the ledger for every
customer. The number of meter events Stripe holds is printed. Run for both writer
transports (v1 meter events, the v2 stream), the faults aimed at each one's endpoint.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import requests

from stripemeter.db.pool import open_pool
from stripemeter.ingest import ledger
from stripemeter.ingest.validation import ValidEvent
from stripemeter.writer.passes import drain
from tests.stripemeter.workers.test_workers import writer_env
from tests.support.stripe_world import (
    HOUR,
    build_world,
    fault,
    meter_events_in_stripe,
    settings_for,
)

STORM_S = 40.0
# Each of the two writers lives ~6 s: long enough to start (~1.5 s) and push, short
# enough to die in the middle of a backoff after a stored-then-500.
KILL_EVERY_S = 3.0
FAULTS = (
    {"status": 500, "count": 1, "after_commit": True},
    {"status": 500, "count": 2, "after_commit": True},
    {"status": 500, "count": 6, "after_commit": True},  # outlasts the writer's 6 attempts
    {"status": 500, "count": 1},
    {"status": 503, "count": 2},
    {"status": 429, "count": 1},
)


# Where each writer transport sends meter events (the faults go there).
SEND_PATH = {"v1": "/v1/billing/meter_events", "v2": "/v2/billing/meter_event_stream"}


@pytest.mark.parametrize("transport", ["v1", "v2"])
def test_stripe_equals_the_ledger_after_kills_and_faults_under_flowing_usage(
    emulator_url: str, db_url: str, tmp_path: Path, transport: str
) -> None:
    worlds = [build_world(emulator_url, db_url, customers=3) for _ in range(4)]
    world_of = {c: w for w in worlds for c in w.customers}
    frozen = min(w.frozen_time() for w in worlds)
    hours = [(frozen // HOUR - h) * HOUR for h in range(1, 7)]
    rng = random.Random(9)
    stop = threading.Event()
    ledger_totals: dict[str, Decimal] = dict.fromkeys(world_of, Decimal(0))
    counts = {"events": 0, "faults": 0, "kills": 0}

    def usage() -> None:
        with open_pool(db_url, max_size=1, wait=True) as pool:
            n = 0
            while not stop.is_set():
                customer = rng.choice(sorted(world_of))
                world = world_of[customer]
                quantity = Decimal(rng.randint(1, 9))
                event = ValidEvent(
                    tenant_id=world.tenant_id,
                    metric=world.metric,
                    customer_ref=customer,
                    quantity=quantity,
                    ts=datetime.fromtimestamp(rng.choice(hours) + rng.randint(0, 3599), UTC),
                    idempotency_key=f"chaos-{n}",
                    resource_id=None,
                    source=None,
                    meta_json=None,
                )
                outcome = ledger.ingest(
                    pool, [event], request_id="chaos", header_key=None, scope="c", body_sha256=""
                )
                assert outcome.accepted == 1
                ledger_totals[customer] += quantity
                n += 1
                counts["events"] = n
                time.sleep(0.01)

    def faults() -> None:
        while not stop.wait(0.25):
            rule = rng.choice(FAULTS)
            fault(emulator_url, method="POST", path=SEND_PATH[transport], **rule)
            counts["faults"] += 1

    env = writer_env(
        emulator_url,
        db_url,
        STRIPE_WRITER_INTERVAL_MS="200",
        RECONCILIATION_INTERVAL_MS="3600000",
        WRITER_TRANSPORT=transport,
    )

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "stripemeter.workers.loop"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    writers = [start(), start()]
    threads = [threading.Thread(target=usage), threading.Thread(target=faults)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + STORM_S
        turn = 0
        while time.monotonic() < deadline:
            time.sleep(KILL_EVERY_S)
            victim = writers[turn % 2]
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
            counts["kills"] += 1
            writers[turn % 2] = start()
            turn += 1
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        for writer_process in writers:
            writer_process.send_signal(signal.SIGKILL)
            writer_process.wait(timeout=10)
    assert requests.delete(f"{emulator_url}/_emulator/faults", timeout=10).status_code == 200

    with psycopg.connect(db_url) as conn:
        settings = settings_for(emulator_url, db_url, WRITER_TRANSPORT=transport)
        result = drain(conn, worlds[0].gateway(), settings)
        pending = conn.execute(
            "SELECT count(*) FROM meter_pushes WHERE status <> 'sent'"
        ).fetchone()
    assert result.errors == []
    assert pending == (0,)
    assert counts["kills"] >= 10 and counts["faults"] >= 50, counts

    start_ts = hours[-1]
    end_ts = frozen - frozen % 60 + 120
    in_stripe_by_customer = {c: w.stripe_total(c, start_ts, end_ts) for c, w in world_of.items()}
    wrong = {
        c: (held, ledger_totals[c])
        for c, held in in_stripe_by_customer.items()
        if held != ledger_totals[c]
    }
    in_stripe = len(meter_events_in_stripe(emulator_url))
    print(
        f"\nchaos ({transport}): {counts['events']} usage events, {counts['kills']} writer kills,"
        f" {counts['faults']} injected faults -> {in_stripe} meter events in Stripe,"
        f" {len(wrong)} of {len(world_of)} customers wrong"
    )
    assert wrong == {}
