"""Writer processes: killed between Stripe's acceptance and the outbox row's update, restarted, run
two at a time, and the background loops' lifecycle. Real processes, real HTTP, real
PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stripemeter.workers.loop import start_in_background
from stripemeter.writer.passes import CRASH_HOOK_ENV
from tests.support.emulator import TEST_KEY
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

REPO = Path(__file__).resolve().parents[3]


def writer_env(emulator_url: str, db_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_HOOK_ENV}
    env.update(
        DATABASE_URL=db_url,
        STRIPE_API_BASE=emulator_url,
        STRIPE_SECRET_KEY=TEST_KEY,
        # src first: in a worktree the editable install points at another checkout.
        PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]),
        **extra,
    )
    return env


def start_writer(
    emulator_url: str, db_url: str, cwd: Path, *args: str, **extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "stripemeter.workers.loop", *args],
        env=writer_env(emulator_url, db_url, **extra),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def usage_times(frozen: int, hours: int) -> list[tuple[int, int]]:
    """For each of the `hours` whole hours before `frozen`'s, newest first: two event times
    inside it (:01 and :02), so each hour is one bucket whatever the minute is now.

    Times a minute apart from `frozen - h * HOUR` itself straddled two hours for one
    minute in every hour, and the tests then counted a bucket per customer too many.
    """
    times = []
    for h in range(1, hours + 1):
        hour_start = frozen - h * HOUR - (frozen - h * HOUR) % HOUR
        times.append((hour_start + 60, hour_start + 120))
    return times


def seed_usage(
    world: StripeWorld, emulator_url: str, db_url: str, hours: int
) -> dict[str, Decimal]:
    """Usage for every customer in `hours` hours (two events per hour); expected totals."""
    frozen = world.frozen_time()
    events = []
    expected: dict[str, Decimal] = {}
    for c_index, customer in enumerate(world.customers):
        for h, times in enumerate(usage_times(frozen, hours), start=1):
            for k, ts in enumerate(times):
                quantity = 1 + (h + k + c_index) % 7
                events.append(usage_event(world, customer, ts, quantity, f"{customer}-{h}-{k}"))
                expected[customer] = expected.get(customer, Decimal(0)) + quantity
    with running_api(settings_for(emulator_url, db_url), db_url) as api:
        ingest(api, events)
    return expected


@given(frozen=st.integers(min_value=100 * HOUR, max_value=2_000_000_000), hours=st.integers(1, 30))
@example(frozen=500_000 * HOUR - 30, hours=4)  # half a minute before an hour: the old flake
@example(frozen=500_000 * HOUR, hours=1)  # on the hour
def test_seeded_usage_is_one_bucket_per_hour_at_any_minute(frozen: int, hours: int) -> None:
    times = usage_times(frozen, hours)
    buckets = {ts // HOUR for pair in times for ts in pair}
    assert len(buckets) == hours
    assert all(first // HOUR == second // HOUR for first, second in times)
    assert max(ts for pair in times for ts in pair) < frozen


def assert_stripe_matches(world: StripeWorld, expected: dict[str, Decimal]) -> None:
    frozen = world.frozen_time()
    start = frozen - 60 * HOUR
    start -= start % HOUR
    end = frozen - frozen % 60 + 120
    for customer, total in expected.items():
        assert world.stripe_total(customer, start, end) == total, customer


def recorded_pushes(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM meter_pushes WHERE status = 'sent'").fetchone()
    assert row is not None
    return int(row[0])


# What each transport leaves when the process dies as Stripe takes its third event:
# (events Stripe holds, outbox rows marked sent, what the restarted writer reports).
# v1 sent one event per request, so two rows were marked before the third; the stream
# sent all eight in one request, and none was marked.
KILLED_AT_THIRD = {
    "v1": (3, 2, "sent=6 duplicates=0"),
    "v2": (8, 0, "sent=8 duplicates=0"),
}


@pytest.mark.parametrize("transport", ["v1", "v2"])
def test_writer_killed_after_stripe_accepted_does_not_double_count_on_restart(
    emulator_url: str, db_url: str, tmp_path: Path, transport: str
) -> None:
    world = build_world(emulator_url, db_url, customers=2)
    expected = seed_usage(world, emulator_url, db_url, hours=4)  # 8 buckets
    held_at_crash, marked_at_crash, restart_report = KILLED_AT_THIRD[transport]

    # One customer at a time, so exactly one push is in flight when the process dies.
    crashed = start_writer(
        emulator_url,
        db_url,
        tmp_path,
        "--drain",
        STRIPE_MAX_CONCURRENCY="1",
        WRITER_TRANSPORT=transport,
        **{CRASH_HOOK_ENV: "3"},
    )
    out, err = crashed.communicate(timeout=120)
    assert crashed.returncode == 70, (out, err)
    assert len(meter_events_in_stripe(emulator_url)) == held_at_crash  # Stripe took them...
    assert recorded_pushes(db_url) == marked_at_crash  # ...the third row is still pending

    restarted = start_writer(emulator_url, db_url, tmp_path, "--drain", WRITER_TRANSPORT=transport)
    out, err = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, (out, err)
    # The repeats carry the same identifiers: v1's the same Idempotency-Key too (Stripe
    # replays its stored answer), the stream's a new request whose known events Stripe drops.
    assert restart_report in out
    assert len(meter_events_in_stripe(emulator_url)) == 8
    assert recorded_pushes(db_url) == 8
    assert_stripe_matches(world, expected)


def test_two_writer_processes_at_once_push_each_bucket_once(
    emulator_url: str, db_url: str, tmp_path: Path
) -> None:
    world = build_world(emulator_url, db_url, customers=3)
    expected = seed_usage(world, emulator_url, db_url, hours=30)  # 90 buckets

    writers = [start_writer(emulator_url, db_url, tmp_path, "--drain") for _ in range(2)]
    outputs = [w.communicate(timeout=180) for w in writers]
    for writer, (out, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, (out, err)
    sent = sum(int(out.split("sent=")[1].split()[0]) for out, _ in outputs)
    duplicates = sum(int(out.split("duplicates=")[1].split()[0]) for out, _ in outputs)
    assert (sent, duplicates) == (90, 0)
    assert len(meter_events_in_stripe(emulator_url)) == 90 == recorded_pushes(db_url)
    assert_stripe_matches(world, expected)


def test_background_loops_push_and_stop_cleanly(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    expected = seed_usage(world, emulator_url, db_url, hours=2)
    settings = settings_for(
        emulator_url, db_url, STRIPE_WRITER_INTERVAL_MS=50, RECONCILIATION_INTERVAL_MS=100
    )
    handle = start_in_background(settings, db_url)
    try:
        deadline = time.monotonic() + 30
        while recorded_pushes(db_url) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        # The reconciler may first see the writer's backlog (investigate); once the
        # writer drained, its next report agrees (ok, or resolved after investigate).
        while time.monotonic() < deadline and latest_status(db_url) not in ("ok", "resolved"):
            time.sleep(0.05)
    finally:
        handle.stop()
    assert not handle.running
    assert recorded_pushes(db_url) == 2
    assert_stripe_matches(world, expected)
    assert latest_status(db_url) in ("ok", "resolved")


def latest_status(db_url: str) -> str | None:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT status FROM reconciliation_reports ORDER BY created_at DESC LIMIT 1"
        ).fetchone()
    return None if row is None else str(row[0])


def test_run_forever_stops_on_sigterm(emulator_url: str, db_url: str, tmp_path: Path) -> None:
    worker = start_writer(emulator_url, db_url, tmp_path, STRIPE_WRITER_INTERVAL_MS="100")
    assert worker.stderr is not None
    seen = []
    for line in worker.stderr:  # wait until both loops run (signal handlers are in place)
        seen.append(line)
        if "reconciler loop started" in line:
            break
    assert worker.poll() is None, seen
    worker.send_signal(signal.SIGTERM)
    out, rest = worker.communicate(timeout=30)
    err = "".join(seen) + rest
    assert worker.returncode == 0, (out, err)
    assert "writer loop stopped" in err
    assert "reconciler loop stopped" in err
