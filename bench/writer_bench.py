"""How many Stripe calls the writer makes per usage event, and how fast it drains.

Starts everything it needs on 127.0.0.1 and stops it afterwards: the embedded
PostgreSQL (in a temporary STRIPEMETER_HOME, or DATABASE_URL's server when set — a
fresh database is created on it), the Stripe emulator and the API. Then it sends
`--events` usage events for `--customers` customers on one test clock over
`--hours` hours through `POST /v1/events/ingest` (5% duplicates, 10% late events sent
after the first drain), optionally injects Stripe faults, drains the writer and
checks Stripe's totals against the ledger. Prints a table and a JSON line.

    .venv/bin/python bench/writer_bench.py [--events 10000] [--customers 3] [--hours 48]
                                           [--faults]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import requests
from _testmode import refuse_live_keys

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stripemeter.config import load_settings  # noqa: E402
from stripemeter.db import embedded  # noqa: E402
from stripemeter.db.migrate import apply_migrations  # noqa: E402
from stripemeter.db.pool import open_pool  # noqa: E402
from stripemeter.stripe.gateway import RetryPolicy  # noqa: E402
from stripemeter.writer.passes import PushResult, drain  # noqa: E402
from tests.support.databases import with_dbname  # noqa: E402
from tests.support.emulator import running_emulator  # noqa: E402
from tests.support.stripe_world import (  # noqa: E402
    HOUR,
    build_world,
    fault,
    ingest,
    meter_events_in_stripe,
    running_api,
    settings_for,
    usage_event,
)


def _database(server_url: str) -> str:
    name = f"writer_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(server_url, name)
    with psycopg.connect(url) as conn:
        apply_migrations(conn)
    return url


def _drop(server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _faults(url: str) -> None:
    path = "/v1/billing/meter_events"
    fault(url, method="POST", path=path, status=429, count=5)
    fault(url, method="POST", path=path, status=500, count=3)
    fault(url, method="POST", path=path, status=500, count=3, after_commit=True)


def run(args: argparse.Namespace, db_url: str) -> dict[str, Any]:
    """One measured run; returns the figures."""
    rng = random.Random(args.seed)
    with running_emulator() as emulator:
        world = build_world(
            emulator, db_url, customers=args.customers, clock_start_ago_s=(args.hours + 2) * HOUR
        )
        settings = settings_for(emulator, db_url)
        frozen = world.frozen_time()
        unique_n = args.events - args.events // 20
        unique = [
            usage_event(
                world,
                world.customers[i % args.customers],
                frozen - args.hours * HOUR + rng.randrange(args.hours * HOUR),
                rng.randint(1, 9),
                f"bench-{i}",
            )
            for i in range(unique_n)
        ]
        late_n = args.events // 10
        on_time, late = unique[: unique_n - late_n], unique[unique_n - late_n :]
        dupes = rng.sample(on_time, args.events - unique_n)
        gateway = world.gateway(RetryPolicy(attempts=12, base_delay_s=0.01, max_delay_s=0.1))
        total = PushResult()
        drain_s = 0.0
        with running_api(settings, db_url) as api:
            for wave in (on_time + dupes, late):
                ingest(api, wave)
                if args.faults:
                    _faults(emulator)
                started = time.perf_counter()
                pool = open_pool(db_url, max_size=settings.STRIPE_MAX_CONCURRENCY + 1, wait=True)
                try:
                    one = drain(pool, gateway, settings)
                finally:
                    pool.close()
                drain_s += time.perf_counter() - started
                total.events_sent += one.events_sent
                total.duplicates += one.duplicates
                total.errors.extend(one.errors)
            status = requests.get(
                f"{api}/v1/writer/status", params={"tenantId": str(world.tenant_id)}, timeout=10
            ).json()
        held = len(meter_events_in_stripe(emulator))
        start = frozen - (args.hours + 1) * HOUR
        start -= start % HOUR
        end = frozen - frozen % 60 + 120
        mismatches = 0
        for customer in world.customers:
            local = sum(Decimal(e["quantity"]) for e in unique if e["customerRef"] == customer)
            if world.stripe_total(customer, start, end) != local:
                mismatches += 1
    return {
        "usage_events": args.events,
        "customers": args.customers,
        "hours": args.hours,
        "faults": bool(args.faults),
        "meter_events_in_stripe": held,
        "calls_per_usage_event": round(held / args.events, 5),
        "accepted": total.events_sent,
        "duplicates_resolved": total.duplicates,
        "drain_seconds": round(drain_s, 3),
        "meter_events_per_second": round((total.events_sent + total.duplicates) / drain_s, 1)
        if drain_s
        else None,
        "pending_after": status["pendingBuckets"],
        "customers_mismatched": mismatches,
        "errors": len(total.errors),
    }


def main() -> int:
    refuse_live_keys("writer_bench")
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--hours", type=int, default=48)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", action="store_true", help="inject 429/500/after-commit 500")
    args = parser.parse_args()
    if not 20 <= args.events <= 200_000 or not 1 <= args.hours <= 24 * 30:
        parser.error("--events must be in 20..200000 and --hours in 1..720")
    base = load_settings()
    home = tempfile.TemporaryDirectory(prefix="writer-bench-")
    settings = load_settings(STRIPEMETER_HOME=home.name)
    server = base.DATABASE_URL or embedded.start(settings)
    db_url = _database(server)
    try:
        figures = run(args, db_url)
    finally:
        _drop(server, db_url)
        if not base.DATABASE_URL:
            embedded.stop(settings)
        home.cleanup()
    width = max(len(k) for k in figures)
    print(f"{'figure':<{width}}  value")
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures))
    return 0 if figures["customers_mismatched"] == 0 and figures["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
