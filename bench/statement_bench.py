"""PostgreSQL's CPU per event of the ingest statement, by how many events one statement holds.

The reason group commit exists, measured with no HTTP and no Python: the ceiling's own
statement (`ingest_bench.pgbench_script`, `ledger.INSERT_AND_COUNT` with the batch built
in SQL) driven by pgbench at a fixed number of connections, once per statement size. For
each size it prints statements/s, events/s and the PostgreSQL server's CPU per event (its
process tree, from /proc). A statement of one event is what the ceiling runs; a statement
of g events is what a group of g one-event requests costs the database.

    .venv/bin/python bench/statement_bench.py [--sizes 1,4,16,100] [--connections 16]
        [--seconds 6] [--customers 100]

Same embedded PostgreSQL (fsync on) and monthly partitions as `ingest_bench.py`; the load
never leaves the machine's Unix socket and is bounded by `--seconds` per size.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid

from _testmode import refuse_live_keys
from ingest_bench import Stack, pgbench_script, require_tools, run_pgbench


def run_size(stack: Stack, size: int, connections: int, seconds: int, customers: int) -> str:
    """One pgbench run of `size`-event statements; the table row it gives."""
    script = stack.home / f"statement-{size}.sql"
    pgbench_script(script, batch=size, tenant=str(uuid.uuid4()), customers=customers)
    cpu_before = stack.cpu_seconds()[1]
    statements = run_pgbench(stack.db_url, script, connections, seconds)["tps"]
    cpu_after = stack.cpu_seconds()[1]
    events = statements * size
    cpu_us = (cpu_after - cpu_before) / max(1.0, events * seconds) * 1e6
    return f"{size:>6} {connections:>5} {statements:>12,.0f} {events:>9,.0f} {cpu_us:>13.1f}"


def main() -> int:
    refuse_live_keys("statement_bench")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,100")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args()
    if not 0 < args.seconds <= 120:
        raise SystemExit("statement_bench: --seconds must be in (0, 120]")
    try:
        sizes = [int(size) for size in args.sizes.split(",")]
    except ValueError:
        raise SystemExit(
            f"statement_bench: --sizes takes numbers like 1,4,16: {args.sizes!r}"
        ) from None
    if not all(0 < size <= 10_000 for size in sizes):
        raise SystemExit("statement_bench: every --sizes entry must be in [1, 10000]")
    require_tools("statement_bench", ("pgbench",))

    stack = Stack("1")
    rows: list[str] = []
    try:
        stack.start_database()
        for size in sizes:
            print(f"measuring {size} event(s)/statement ...", file=sys.stderr, flush=True)
            rows.append(run_size(stack, size, args.connections, args.seconds, args.customers))
    finally:
        stack.stop()
    print(f"{'ev/stmt':>6} {'conns':>5} {'statements/s':>12} {'events/s':>9} {'DB CPU/event':>13}")
    print("\n".join(rows))
    print(f"load average at the end (other processes included): {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
