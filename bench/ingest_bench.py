"""Ingest throughput against the database alone: the API (driven by wrk) vs pgbench, one run.

Starts the embedded PostgreSQL (fsync on) in a temporary STRIPEMETER_HOME and
`stripemeter api --no-workers` on 127.0.0.1 (authentication ON, a real API key). For each
shape (events per request x connections) it measures, back to back on the same database:

- the **ceiling**: the ingest's own insert-and-count statement (`ledger.INSERT_AND_COUNT`),
  one statement per transaction, driven by pgbench with the same number of connections,
  no HTTP and no Python: what PostgreSQL alone does with per-request transactions;
- the **API**: wrk (C, keep-alive) posting unique-key batches to `/v1/events/ingest`.

It prints API events/s, ceiling events/s, their ratio, p50/p99, API and DB CPU per event,
the events per group group commit reached (rows per committing transaction), and the
exactness check (ledger rows = events the API answered 200 for, within what was
in flight when wrk stopped; bucket counts = ledger rows), as a table and a JSON document.

    .venv/bin/python bench/ingest_bench.py [--seconds 10] [--shapes 1x16,100x16,1x64,100x64]
        [--customers 100] [--server-processes auto] [--json results.json]

The load never leaves loopback and is bounded by `--seconds`. wrk and pgbench come from
Debian (`apt-get install wrk postgresql-client`); the bench says so if they are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import requests
from _testmode import refuse_live_keys

from stripemeter.db.partitions import ensure_months, maintain, month_of
from stripemeter.ingest.ledger import INSERT_AND_COUNT

SCRIPT = Path(sys.executable).with_name("stripemeter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "stripemeter.cli"]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARMUP_S = 2.0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds used by a process (and, optionally, its reaped children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def _tree_cpu(root: int) -> float:
    """CPU seconds of a process, its live descendants and those it reaped."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except OSError:
                continue
    total, frontier = _proc_cpu(root, children=True), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
        total += sum(_proc_cpu(pid) for pid in frontier)
    return total


def require_tools(bench: str = "ingest_bench", tools: tuple[str, ...] = ("wrk", "pgbench")) -> None:
    """Exit with the Debian packages to install when a load client is missing."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = {"wrk": "wrk", "pgbench": "postgresql-client"}
        raise SystemExit(
            f"{bench}: {', '.join(missing)} not found; install with "
            f"`apt-get install {' '.join(packages[m] for m in missing)}` (C load clients: "
            "the bench never drives load from Python)"
        )


class Stack:
    """The embedded database and the API as subprocesses in a temporary home."""

    def __init__(self, server_processes: str) -> None:
        self.home = Path(tempfile.mkdtemp(prefix="smb", dir="/tmp"))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "BYPASS_AUTH") and not k.startswith("STRIPEMETER_")
        }
        self.env["STRIPEMETER_HOME"] = str(self.home)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server_processes = server_processes
        self.api: subprocess.Popen[bytes] | None = None
        self.db_url = ""

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*COMMAND, *args], cwd=self.home, env=self.env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"stripemeter {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def start_database(self) -> None:
        """The embedded PostgreSQL, migrated, with the bench's key sequence and partitions.

        The months the workers' `ledger` loop keeps ahead are made before either side
        writes, so both land in monthly partitions (the production shape), not the
        default. Events go back 90 minutes, so the month two hours ago too.
        """
        self.db_url = self.cli("db", "url")
        self.cli("migrate")
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            conn.execute("CREATE SEQUENCE IF NOT EXISTS bench_keys")
            maintain(conn, months_ahead=1, retention_months=0)
            ensure_months(conn, [month_of(datetime.now(UTC) - timedelta(hours=2))])

    def start(self) -> None:
        """The database (`start_database`), then the API, ready."""
        self.start_database()
        self.api = subprocess.Popen(
            [
                *COMMAND,
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-workers",
                "--workers-processes",
                self.server_processes,
            ],
            cwd=self.home,
            env=self.env,
            stdout=open(self.home / "api.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.api.poll() is not None:
                raise RuntimeError((self.home / "api.log").read_text())
            try:
                if requests.get(self.base + "/health/ready", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("API did not become ready")

    def cpu_seconds(self) -> tuple[float, float]:
        """(API process tree, PostgreSQL server tree) CPU seconds so far."""
        api = _tree_cpu(self.api.pid) if self.api else 0.0
        pid_file = self.home / "pgdata" / "postmaster.pid"
        postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else 0
        return api, _tree_cpu(postmaster) if postmaster else 0.0

    def stop(self) -> None:
        if self.api is not None:
            self.api.terminate()
            try:
                self.api.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.api.kill()
        try:
            self.cli("db", "stop")
        finally:
            shutil.rmtree(self.home, ignore_errors=True)

    def ledger_counts(self, tenant: str) -> tuple[int, int]:
        """(events rows, bucket event counts) of `tenant`."""
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM events WHERE tenant_id = %(t)s),"
                " (SELECT coalesce(sum(event_count), 0) FROM usage_buckets"
                " WHERE tenant_id = %(t)s)",
                {"t": tenant},
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def last_seq(self) -> int:
        """The ledger's newest `seq` (0 when empty)."""
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def events_per_group(self, tenant: str, after_seq: int) -> float:
        """Events per committing transaction among `tenant`'s rows after `after_seq`.

        Every group the API commits is one transaction, so its rows share their `xmin`;
        this is the group size group commit really reached under the load.
        """
        with psycopg.connect(self.db_url) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT xmin::text) FROM events"
                " WHERE tenant_id = %s AND seq > %s",
                (tenant, after_seq),
            ).fetchone()
        assert row is not None
        return int(row[0]) / max(1, int(row[1]))


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


WRK_LUA = """
local batch = %(batch)d
local prefix = %(prefix)s
local customers = %(customers)d
local stamps = { %(stamps)s }
local counter = 0
ok = 0
failed = 0
last_status = 0
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  math.randomseed(tid * 7919)
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, batch do
    parts[i] = string.format(
      '{"tenantId":%(tenant)s,"metric":"api_calls","customerRef":"cus_%%d",' ..
      '"quantity":%%d,"ts":"%%s","idempotencyKey":"%%s-%%d-%%d-%%d"}',
      math.random(0, customers - 1), math.random(1, 99), stamps[math.random(#stamps)],
      prefix, tid, counter, i)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  return wrk.format("POST", "/v1/events/ingest",
    {["Authorization"] = %(auth)s, ["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else failed = failed + 1; last_status = status end
end

function done(summary, latency, requests)
  local oks, fails, last = 0, 0, 0
  for _, thread in ipairs(threads) do
    oks = oks + thread:get("ok")
    fails = fails + thread:get("failed")
    if thread:get("last_status") ~= 0 then last = thread:get("last_status") end
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%%d,"ok":%%d,"failed":%%d,"last_status":%%d,"duration_us":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d,"socket_errors":%%d}\\n',
    summary.requests, oks, fails, last, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout))
end
"""


def wrk_script(path: Path, *, batch: int, tenant: str, secret: str, customers: int) -> None:
    now = datetime.now(UTC)
    stamps = ", ".join(
        _lua_string((now - timedelta(minutes=m)).strftime("%Y-%m-%dT%H:%M:%SZ")) for m in range(90)
    )
    path.write_text(
        WRK_LUA
        % {
            "batch": batch,
            "prefix": _lua_string(uuid.uuid4().hex[:10]),
            "customers": customers,
            "stamps": stamps,
            "tenant": f'"{tenant}"',  # inside a single-quoted Lua string
            "auth": _lua_string(f"Bearer {secret}"),
        }
    )


def run_wrk(stack: Stack, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    threads = str(min(connections, max(1, os.cpu_count() or 1)))
    command = [
        "wrk",
        "-t",
        threads,
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        stack.base,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    match = re.search(r"^WRKJSON (.*)$", done.stdout, re.MULTILINE)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    result: dict[str, Any] = json.loads(match.group(1))
    return result


def pgbench_script(path: Path, *, batch: int, tenant: str, customers: int) -> None:
    """The ingest statement with the batch built in SQL: same rows, no client, no HTTP."""
    generated = (
        "(SELECT jsonb_agg(jsonb_build_object("
        f"'t', '{tenant}', 'k', 'pg-' || nextval('bench_keys'), 'm', 'api_calls',"
        f" 'c', 'cus_' || floor(random() * {customers})::int,"
        " 'q', 1 + floor(random() * 99)::int,"
        " 'ts', date_trunc('second', now()) - floor(random() * 90) * interval '1 minute',"
        f" 'rq', 'pgbench')) FROM generate_series(1, {batch}))"
    )
    statement = INSERT_AND_COUNT.replace("%(batch)s::jsonb", generated).replace(
        "%(request_id)s",
        "'pgbench'",  # the statement before group commit had it
    )
    path.write_text(" ".join(statement.split()) + ";\n")


def run_pgbench(db_url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    threads = str(min(connections, max(1, os.cpu_count() or 1)))
    command = [
        "pgbench",
        "-n",
        "-M",
        "prepared",
        "-c",
        str(connections),
        "-j",
        threads,
        "-T",
        str(max(1, round(seconds))),
        "-f",
        str(script),
        db_url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", done.stdout)
    if done.returncode != 0 or tps is None:
        raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stdout}{done.stderr}")
    return {
        "tps": float(tps.group(1)),
        "latency_avg_ms": float(latency.group(1)) if latency else None,
        "failed": int(failed.group(1)) if failed else 0,
    }


def measure(
    stack: Stack, tenant: str, secret: str, batch: int, connections: int, args: argparse.Namespace
) -> dict[str, Any]:
    work = stack.home / f"shape-{batch}x{connections}"
    work.mkdir()
    sql = work / "ingest.sql"
    pgbench_script(sql, batch=batch, tenant=str(uuid.uuid4()), customers=args.customers)
    ceiling = run_pgbench(stack.db_url, sql, connections, args.seconds)

    lua = work / "ingest.lua"
    wrk_script(lua, batch=batch, tenant=tenant, secret=secret, customers=args.customers)
    run_wrk(stack, lua, connections, WARMUP_S)  # warm-up: prepared statements, caches
    time.sleep(0.5)  # the warm-up's requests in flight finish before counting starts
    rows_before, _ = stack.ledger_counts(tenant)
    seq_before = stack.last_seq()
    cpu_before = stack.cpu_seconds()
    wrk_script(lua, batch=batch, tenant=tenant, secret=secret, customers=args.customers)
    out = run_wrk(stack, lua, connections, args.seconds)
    cpu_after = stack.cpu_seconds()
    time.sleep(0.5)  # requests in flight when wrk stopped finish
    rows_after, bucket_events = stack.ledger_counts(tenant)
    per_group = stack.events_per_group(tenant, seq_before)

    window = out["duration_us"] / 1e6
    answered_events = out["ok"] * batch
    stored = rows_after - rows_before
    api_events_s = answered_events / window
    ceiling_events_s = ceiling["tps"] * batch
    api_cpu = cpu_after[0] - cpu_before[0]
    db_cpu = cpu_after[1] - cpu_before[1]
    return {
        "events_per_request": batch,
        "connections": connections,
        "seconds": round(window, 2),
        "api_requests": out["requests"],
        "api_events_per_s": round(api_events_s),
        "ceiling_events_per_s": round(ceiling_events_s),
        "api_over_ceiling": round(api_events_s / ceiling_events_s, 2),
        "p50_ms": round(out["p50_us"] / 1000, 2),
        "p99_ms": round(out["p99_us"] / 1000, 2),
        "ceiling_latency_avg_ms": ceiling["latency_avg_ms"],
        "api_cpu_us_per_request": round(api_cpu / max(1, out["ok"]) * 1e6),
        "api_cpu_us_per_event": round(api_cpu / max(1, answered_events) * 1e6, 1),
        "db_cpu_us_per_event": round(db_cpu / max(1, answered_events) * 1e6, 1),
        "events_per_group": round(per_group, 1),
        "errors": out["failed"] + out["socket_errors"],
        "last_status": out["last_status"],
        "ceiling_failed_transactions": ceiling["failed"],
        # Exact: nothing answered 200 is missing; what is stored beyond it was in flight
        # (at most one request per connection); the buckets count every stored row.
        "stored_events": stored,
        "answered_events": answered_events,
        "exact": answered_events <= stored <= answered_events + connections * batch
        and rows_after == bucket_events,
    }


def main() -> int:
    refuse_live_keys("ingest_bench")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shapes", default="1x16,100x16,1x64,100x64")
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--server-processes", default="auto")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    if not 0 < args.seconds <= 120:
        raise SystemExit("ingest_bench: --seconds must be in (0, 120]")
    require_tools()
    shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.shapes.split(",")]

    stack = Stack(args.server_processes)
    results: list[dict[str, Any]] = []
    try:
        stack.start()
        tenant = str(uuid.uuid4())
        secret = stack.cli("api-keys", "create", "--tenant", tenant, "--name", "bench")
        for batch, connections in shapes:
            print(
                f"measuring {batch} event(s)/request at {connections} connections ...",
                file=sys.stderr,
                flush=True,
            )
            results.append(measure(stack, tenant, secret, batch, connections, args))
    finally:
        stack.stop()

    print(
        f"{'ev/req':>6} {'conns':>5} {'API ev/s':>9} {'ceiling':>8} {'ratio':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'API cpu/req':>11} {'API cpu/ev':>10} {'DB cpu/ev':>9} "
        f"{'ev/group':>8} {'err':>4} {'exact':>5}"
    )
    for r in results:
        print(
            f"{r['events_per_request']:>6} {r['connections']:>5} {r['api_events_per_s']:>9} "
            f"{r['ceiling_events_per_s']:>8} {r['api_over_ceiling']:>6} {r['p50_ms']:>7} "
            f"{r['p99_ms']:>7} {str(r['api_cpu_us_per_request']) + 'us':>11} "
            f"{str(r['api_cpu_us_per_event']) + 'us':>10} "
            f"{str(r['db_cpu_us_per_event']) + 'us':>9} {r['events_per_group']:>8} "
            f"{r['errors']:>4} "
            f"{'yes' if r['exact'] else 'NO':>5}"
        )
    load_avg = os.getloadavg()
    print(f"load average at the end (other processes included): {load_avg[0]:.2f}")
    document = {
        "benchmark": "ingest_vs_pgbench",
        "load_average_1m": round(load_avg[0], 2),
        "server_processes": args.server_processes,
        "cpus": os.cpu_count(),
        "customers": args.customers,
        "results": results,
    }
    print(json.dumps(document, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(document, indent=2))
    return 0 if all(r["errors"] == 0 and r["exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
