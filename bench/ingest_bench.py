"""Ingest throughput and latency of `/v1/events/ingest`, end to end, on this machine.

Starts the embedded PostgreSQL in a temporary STRIPEMETER_HOME, the API on 127.0.0.1
(authentication ON, with a real API key), then for each batch size runs CLIENTS
concurrent keep-alive HTTP clients for a fixed time and reports events/s and
request latency percentiles, checks that the ledger holds exactly the accepted
events, and measures how soon an ingested event shows in `/v1/usage`. Prints a
table and a JSON document; stops everything it started.

    .venv/bin/python bench/ingest_bench.py [--seconds 10] [--clients 16] [--batches 1,100]
        [--customers 1000] [--server-processes 1] [--json results.json]

The load generator is a small asyncio HTTP/1.1 client (no `requests`), so that on a
2-core machine most CPU goes to the server. Every event has a unique key, so every
event is accepted (the expensive path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
import requests

SCRIPT = Path(sys.executable).with_name("stripemeter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "stripemeter.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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
    """CPU seconds of a process, its live children and those it reaped."""
    total = _proc_cpu(root, children=True)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == root:
            total += _proc_cpu(int(entry.name))
    return total


class Stack:
    """The embedded database and the API as subprocesses in a temporary home."""

    def __init__(self, server_processes: int) -> None:
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

    def start(self) -> None:
        self.db_url = self.cli("db", "url")
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
                str(self.server_processes),
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


class Load:
    """Builds unique-key batches and drives them over raw keep-alive connections."""

    def __init__(self, port: int, secret: str, tenant: str, customers: int) -> None:
        self.port = port
        self.head = (
            "POST /v1/events/ingest HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.tenant = tenant
        self.customers = customers
        now = datetime.now(UTC)
        self.stamps = [
            (now - timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in range(90)
        ]
        self.run_id = uuid.uuid4().hex[:8]

    def body(self, batch: int, client: int, seq: int, rng: random.Random) -> bytes:
        tenant, run_id = self.tenant, self.run_id
        parts = [
            f'{{"tenantId":"{tenant}","metric":"api_calls",'
            f'"customerRef":"cus_{rng.randrange(self.customers)}",'
            f'"quantity":{rng.randrange(1, 100)},"ts":"{rng.choice(self.stamps)}",'
            f'"idempotencyKey":"{run_id}-{client}-{seq}-{i}"}}'
            for i in range(batch)
        ]
        return ('{"events":[' + ",".join(parts) + "]}").encode()

    async def client(
        self, batch: int, client: int, until: float, measure_from: float, out: dict[str, Any]
    ) -> None:
        rng = random.Random(client)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        seq = 0
        try:
            while time.perf_counter() < until:
                body = self.body(batch, client, seq, rng)
                seq += 1
                request = self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                payload = await reader.readexactly(length)
                elapsed = time.perf_counter() - started
                if status != 200:
                    out["errors"] += 1
                    out["last_error"] = f"{status} {payload[:200]!r}"
                    continue
                accepted = orjson.loads(payload)["accepted"]
                out["accepted_total"] += accepted
                if started >= measure_from:
                    out["latencies"].append(elapsed)
                    out["events"] += batch
                    out["requests"] += 1
        finally:
            writer.close()

    async def run(self, batch: int, clients: int, seconds: float, warmup: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "latencies": [],
            "events": 0,
            "requests": 0,
            "errors": 0,
            "accepted_total": 0,
            "last_error": None,
        }
        begin = time.perf_counter()
        measure_from = begin + warmup
        until = measure_from + seconds
        await asyncio.gather(
            *(self.client(batch, c, until, measure_from, out) for c in range(clients))
        )
        window = time.perf_counter() - measure_from
        out["window_s"] = window
        return out


def usage_visibility(stack: Stack, secret: str, tenant: str, probes: int = 20) -> list[float]:
    """Seconds from an ingest answer to `/v1/usage` including that event, per probe."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {secret}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window = {
        "tenantId": tenant,
        "metric": "visibility",
        "from": hour.isoformat(),
        "to": (hour + timedelta(hours=1)).isoformat(),
    }
    delays = []
    for i in range(probes):
        ts = datetime.now(UTC).isoformat()
        ev = {
            "tenantId": tenant,
            "metric": "visibility",
            "customerRef": "c",
            "quantity": 1,
            "ts": ts,
        }
        answer = session.post(stack.base + "/v1/events/ingest", json={"events": [ev]}, timeout=30)
        answered = time.perf_counter()
        if answer.json().get("accepted") != 1:
            continue
        while True:
            total = session.get(stack.base + "/v1/usage", params=window, timeout=30).json()
            if int(total["events"]) >= i + 1:
                delays.append(time.perf_counter() - answered)
                break
            if time.perf_counter() - answered > 10:
                delays.append(float("inf"))
                break
    session.close()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--batches", default="1,100")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--server-processes", type=int, default=1)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    stack = Stack(args.server_processes)
    results: list[dict[str, Any]] = []
    try:
        stack.start()
        tenant = str(uuid.uuid4())
        secret = stack.cli("api-keys", "create", "--tenant", tenant, "--name", "bench")
        load = Load(stack.port, secret, tenant, args.customers)
        for batch in [int(b) for b in args.batches.split(",")]:
            with psycopg.connect(stack.db_url) as conn:
                before = conn.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]
            cpu_before = stack.cpu_seconds()
            out = asyncio.run(load.run(batch, args.clients, args.seconds, args.warmup))
            cpu_after = stack.cpu_seconds()
            with psycopg.connect(stack.db_url) as conn:
                after, bucket_events = conn.execute(
                    "SELECT (SELECT count(*) FROM events),"
                    " (SELECT coalesce(sum(event_count), 0) FROM usage_buckets)"
                ).fetchone()  # type: ignore[misc]
            lat = out["latencies"]
            results.append(
                {
                    "batch": batch,
                    "clients": args.clients,
                    "seconds": round(out["window_s"], 2),
                    "requests": out["requests"],
                    "events": out["events"],
                    "events_per_s": round(out["events"] / out["window_s"]),
                    "requests_per_s": round(out["requests"] / out["window_s"]),
                    "p50_ms": round(percentile(lat, 50) * 1000, 2),
                    "p95_ms": round(percentile(lat, 95) * 1000, 2),
                    "p99_ms": round(percentile(lat, 99) * 1000, 2),
                    # CPU per event is robust to other load on the machine; wall-clock
                    # rates are not. (Counts the warm-up too, so slightly pessimistic.)
                    "api_cpu_us_per_event": round(
                        (cpu_after[0] - cpu_before[0]) / max(1, out["accepted_total"]) * 1e6
                    ),
                    "db_cpu_us_per_event": round(
                        (cpu_after[1] - cpu_before[1]) / max(1, out["accepted_total"]) * 1e6
                    ),
                    "errors": out["errors"],
                    "last_error": out["last_error"],
                    "ledger_matches_accepted": after - before == out["accepted_total"],
                    "buckets_match_ledger": after == bucket_events,
                }
            )
        delays = usage_visibility(stack, secret, tenant)
    finally:
        stack.stop()

    visibility = {
        "usage_visible_p50_ms": round(statistics.median(delays) * 1000, 2),
        "usage_visible_p95_ms": round(percentile(delays, 95) * 1000, 2),
    }
    header = f"{'batch':>5} {'clients':>7} {'events/s':>9} {'req/s':>7} {'p50 ms':>8} "
    header += f"{'p95 ms':>8} {'p99 ms':>8} {'api cpu/ev':>10} {'db cpu/ev':>9} "
    header += f"{'errors':>6} {'exact':>5}"
    print(header)
    for r in results:
        exact = "yes" if r["ledger_matches_accepted"] and r["buckets_match_ledger"] else "NO"
        print(
            f"{r['batch']:>5} {r['clients']:>7} {r['events_per_s']:>9} {r['requests_per_s']:>7} "
            f"{r['p50_ms']:>8} {r['p95_ms']:>8} {r['p99_ms']:>8} "
            f"{str(r['api_cpu_us_per_event']) + 'us':>10} "
            f"{str(r['db_cpu_us_per_event']) + 'us':>9} "
            f"{r['errors']:>6} {exact:>5}"
        )
    print(
        f"usage visible after ingest: p50 {visibility['usage_visible_p50_ms']} ms, "
        f"p95 {visibility['usage_visible_p95_ms']} ms"
    )
    load_avg = os.getloadavg()
    print(f"load average during the run (other processes included): {load_avg[0]:.2f}")
    document = {
        "benchmark": "ingest",
        "load_average_1m": round(load_avg[0], 2),
        "server_processes": args.server_processes,
        "cpus": os.cpu_count(),
        "results": results,
        **visibility,
    }
    print(json.dumps(document, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(document, indent=2))
    ok = all(r["errors"] == 0 and r["ledger_matches_accepted"] for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
