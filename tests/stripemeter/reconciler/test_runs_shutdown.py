"""A background run cut short by the service stopping is recorded as that, not as an outage.

Before, the API's executor wrapped its backoff interruption in a `StripeUnavailable`,
so a run interrupted by a restart said `stripe_unavailable` ("Stripe is down").
"""

from __future__ import annotations

import threading
import time

import psycopg

from stripemeter.db.pool import open_pool
from stripemeter.reconciler.runs import RunExecutor, get_run
from stripemeter.stripe.client import gateway_from_settings
from stripemeter.stripe.gateway import RetryPolicy
from tests.support.stripe_world import build_world, fault, settings_for


def test_a_run_stopped_during_a_stripe_backoff_fails_as_shutting_down(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    settings = settings_for(emulator_url, db_url)
    # Every Stripe read fails for a while: the gateway backs off (30 s per try) between them.
    fault(emulator_url, method="GET", path="/v1/*", status=500, count=1000)
    stop = threading.Event()
    gateway = gateway_from_settings(
        settings, retry=RetryPolicy(attempts=5, base_delay_s=30, max_delay_s=30), stop=stop
    )
    with open_pool(db_url, max_size=2, wait=True) as pool:
        executor = RunExecutor(pool, gateway, settings, threads=1, stop=stop)
        with psycopg.connect(db_url) as conn:
            run, created = executor.submit(conn, world.tenant_id)
        assert created
        deadline = time.monotonic() + 10
        with psycopg.connect(db_url) as conn:
            while (found := get_run(conn, run.id)) is not None and found.status == "queued":
                assert time.monotonic() < deadline, "the run never started"
                time.sleep(0.05)
        time.sleep(0.3)  # inside the first 30 s backoff
        started = time.monotonic()
        executor.stop(timeout_s=10)
        assert time.monotonic() - started < 5, "the backoff did not end at once"
        with psycopg.connect(db_url) as conn:
            finished = get_run(conn, run.id)
    assert finished is not None
    assert (finished.status, finished.error_code) == ("failed", "shutting_down")
    assert finished.error is not None and "run it again" in finished.error
