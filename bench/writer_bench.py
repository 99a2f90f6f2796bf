"""The writer's two transports against the emulator: pushes/s and Stripe requests per event.

For each transport (`WRITER_TRANSPORT=v1`, one `POST /v1/billing/meter_events` per meter
event; `v2`, the meter event stream, up to 100 events of any customers per request) it
starts, on 127.0.0.1 and stopped afterwards: a fresh database (on the embedded PostgreSQL
in a temporary STRIPEMETER_HOME, or on DATABASE_URL's server when set), a fresh Stripe
emulator that counts the HTTP requests it answers, and the API. It sends
`--events-per-hour` usage events for each of `--customers` customers (on test clocks,
three per clock) in each of the last `--hours` hours through `POST /v1/events/ingest`,
drains the writer once (optionally with `--faults`: 429, 500 and 500-after-storing on the
transport's endpoint) and checks, per customer, Stripe's meter summary against the ledger.

It prints per transport: meter events pushed, drain seconds, pushes/s, meter-event
requests (v1: meter events; v2: stream + session) and every Stripe request the drain made
(the writer's reads of customers, clocks, subscriptions and invoices included), each also
per 1,000 meter events, and the exactness check; then v1 / v2 request ratios and a JSON line.

    .venv/bin/python bench/writer_bench.py [--customers 100] [--hours 24]
        [--events-per-hour 3] [--transports v1,v2] [--faults]

Exit 0 when every customer's Stripe total equals the ledger and the drains reported no
error, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from _testmode import refuse_live_keys

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stripemeter.config import load_settings  # noqa: E402
from stripemeter.db import embedded  # noqa: E402
from stripemeter.db.migrate import apply_migrations  # noqa: E402
from stripemeter.db.pool import open_pool  # noqa: E402
from stripemeter.stripe.gateway import RetryPolicy  # noqa: E402
from stripemeter.writer.passes import drain  # noqa: E402
from tests.support.databases import with_dbname  # noqa: E402
from tests.support.emulator import RequestCounts, counting_emulator, requests_to  # noqa: E402
from tests.support.stripe_world import (  # noqa: E402
    HOUR,
    build_world,
    fault,
    ingest,
    running_api,
    settings_for,
    usage_event,
)

SEND_PATHS = {
    "v1": ("/v1/billing/meter_events",),
    "v2": ("/v2/billing/meter_event_stream", "/v2/billing/meter_event_session"),
}
CUSTOMERS_PER_CLOCK = 3  # the emulator's (and Stripe's reported) cap per test clock


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


def _faults(emulator_url: str, transport: str) -> None:
    path = SEND_PATHS[transport][0]
    fault(emulator_url, method="POST", path=path, status=429, count=3)
    fault(emulator_url, method="POST", path=path, status=500, count=2)
    fault(emulator_url, method="POST", path=path, status=500, count=2, after_commit=True)


def _since(before: RequestCounts, after: RequestCounts) -> RequestCounts:
    out: RequestCounts = Counter()
    for key, n in after.items():
        if n - before.get(key, 0):
            out[key] = n - before.get(key, 0)
    return out


def _ledger_totals(db_url: str, tenant_id: str) -> dict[str, Decimal]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT customer_ref, sum(quantity) FROM events WHERE tenant_id = %s GROUP BY 1",
            (tenant_id,),
        ).fetchall()
    return {str(r[0]): Decimal(r[1]) for r in rows}


def run_transport(args: argparse.Namespace, transport: str, db_url: str) -> dict[str, Any]:
    """One transport on its own database and emulator; returns its figures."""
    rng = random.Random(args.seed)
    with counting_emulator() as (emulator, counts):
        world = build_world(
            emulator,
            db_url,
            customers=args.customers,
            clock_start_ago_s=(args.hours + 2) * HOUR,
            customers_per_clock=CUSTOMERS_PER_CLOCK,
        )
        settings = settings_for(emulator, db_url, WRITER_TRANSPORT=transport)
        frozen = world.frozen_time()
        first_hour = (frozen // HOUR - args.hours) * HOUR
        events = [
            usage_event(
                world,
                customer,
                first_hour + h * HOUR + rng.randrange(HOUR),
                rng.randint(1, 9),
                f"bench-{c}-{h}-{k}",
            )
            for c, customer in enumerate(world.customers)
            for h in range(args.hours)
            for k in range(args.events_per_hour)
        ]
        with running_api(settings, db_url) as api:
            ingest(api, events)
        # The gateway every writer process keeps; a fresh one would re-read the clocks.
        gateway = world.gateway(RetryPolicy(attempts=8, base_delay_s=0.01, max_delay_s=0.1))
        if args.faults:
            _faults(emulator, transport)
        before = Counter(counts)
        pool = open_pool(db_url, max_size=settings.STRIPE_MAX_CONCURRENCY + 1, wait=True)
        started = time.perf_counter()
        try:
            result = drain(pool, gateway, settings)
        finally:
            drain_s = time.perf_counter() - started
            pool.close()
        made = _since(before, Counter(counts))
        ledger = _ledger_totals(db_url, world.tenant_id)
        start = first_hour - HOUR
        end = frozen - frozen % 60 + 120
        mismatched = [c for c in world.customers if world.stripe_total(c, start, end) != ledger[c]]
    pushed = result.events_sent + result.duplicates + result.found
    sends = sum(requests_to(made, path) for path in SEND_PATHS[transport])
    every = sum(made.values())
    per_1000 = 1000 / pushed if pushed else 0.0
    return {
        "transport": transport,
        "usage_events": len(events),
        "meter_events": pushed,
        "drain_s": round(drain_s, 3),
        "pushes_per_s": round(pushed / drain_s, 1) if drain_s else None,
        "send_requests": sends,
        "send_requests_per_1000": round(sends * per_1000, 2),
        "stripe_requests": every,
        "stripe_requests_per_1000": round(every * per_1000, 2),
        "customers": args.customers,
        "customers_exact": args.customers - len(mismatched),
        "errors": len(result.errors),
    }


COLUMNS = (
    ("transport", "transport"),
    ("meter_events", "meter events"),
    ("drain_s", "drain s"),
    ("pushes_per_s", "pushes/s"),
    ("send_requests", "send requests"),
    ("send_requests_per_1000", "per 1,000"),
    ("stripe_requests", "all Stripe requests"),
    ("stripe_requests_per_1000", "per 1,000"),
    ("customers_exact", "customers exact"),
)


def _table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(label for _, label in COLUMNS) + " |"
    rule = "| " + " | ".join("---" if k == "transport" else "---:" for k, _ in COLUMNS) + " |"
    body = []
    for row in rows:
        cells = [
            f"{row['customers_exact']} of {row['customers']}"
            if key == "customers_exact"
            else f"{row[key]:,}"
            if isinstance(row[key], int)
            else str(row[key])
            for key, _ in COLUMNS
        ]
        body.append("| " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


def main() -> int:
    refuse_live_keys("writer_bench")
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--events-per-hour", type=int, default=3)
    parser.add_argument("--transports", default="v1,v2")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", action="store_true", help="inject 429/500/after-commit 500")
    args = parser.parse_args()
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    if not transports or any(t not in SEND_PATHS for t in transports):
        parser.error("--transports takes v1, v2 or v1,v2")
    if not 1 <= args.customers <= 1000 or not 1 <= args.hours <= 24 * 30:
        parser.error("--customers must be in 1..1000 and --hours in 1..720")
    if not 1 <= args.events_per_hour <= 100:
        parser.error("--events-per-hour must be in 1..100")
    base = load_settings()
    home = tempfile.TemporaryDirectory(prefix="writer-bench-")
    settings = load_settings(STRIPEMETER_HOME=home.name)
    server = base.DATABASE_URL or embedded.start(settings)
    rows = []
    try:
        for transport in transports:
            db_url = _database(server)
            try:
                rows.append(run_transport(args, transport, db_url))
            finally:
                _drop(server, db_url)
    finally:
        if not base.DATABASE_URL:
            embedded.stop(settings)
        home.cleanup()
    print(_table(rows))
    by = {row["transport"]: row for row in rows}
    summary: dict[str, Any] = {"runs": rows}
    if "v1" in by and "v2" in by and by["v2"]["send_requests"]:
        summary["v1_over_v2_send_requests"] = round(
            by["v1"]["send_requests"] / by["v2"]["send_requests"], 1
        )
        summary["v1_over_v2_stripe_requests"] = round(
            by["v1"]["stripe_requests"] / by["v2"]["stripe_requests"], 1
        )
        print(
            f"v1 / v2: {summary['v1_over_v2_send_requests']}x the send requests, "
            f"{summary['v1_over_v2_stripe_requests']}x all Stripe requests"
        )
    print(json.dumps(summary))
    exact = all(r["customers_exact"] == r["customers"] and r["errors"] == 0 for r in rows)
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
