"""The server floor: requests/s and CPU per request of a no-op app, per server.

    .venv/bin/python bench/floor_bench.py --seconds 5
    .venv/bin/python bench/floor_bench.py --cases uvicorn-raw,granian-raw --workers 2

granian (`pip install granian`) is not a dependency of the project; without it, leave
its cases out. Each case serves a no-op app from `bench/floor_apps.py` on 127.0.0.1 with `--workers`
processes and drives `GET /health/live` with wrk (16 keep-alive connections). CPU is the
server's process tree, read from /proc as `ingest_bench.py` reads it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from importlib.util import find_spec
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _testmode import refuse_live_keys
from ingest_bench import _tree_cpu, free_port

BENCH = Path(__file__).resolve().parent
CASES = {
    "uvicorn-fastapi": ("uvicorn", "floor_apps:fastapi_app"),
    "uvicorn-raw": ("uvicorn", "floor_apps:raw"),
    # The same under the protocol `stripemeter api` serves with (api.serving).
    "stripemeter-protocol-raw": ("stripemeter", "floor_apps:raw"),
    "granian-fastapi": ("granian", "floor_apps:fastapi_app"),
    "granian-raw": ("granian", "floor_apps:raw"),
}


def _command(server: str, target: str, port: int, workers: int) -> list[str]:
    if server in ("uvicorn", "stripemeter"):
        http = (
            "stripemeter.api.serving:LimitedHttpToolsProtocol"
            if server == "stripemeter"
            else "httptools"
        )
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--app-dir",
            str(BENCH),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--http",
            http,
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    return [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--loop",
        "uvloop",
        "--working-dir",
        str(BENCH),
        "--no-access-log",
        "--log-level",
        "warning",
        target,
    ]


def measure(case: str, workers: int, seconds: float, connections: int) -> dict[str, float]:
    server, target = CASES[case]
    port = free_port()
    proc = subprocess.Popen(_command(server, target, port, workers), cwd=BENCH)
    url = f"http://127.0.0.1:{port}/health/live"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        subprocess.run(["wrk", "-t2", f"-c{connections}", "-d2s", url], capture_output=True)
        before = _tree_cpu(proc.pid)
        done = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds:g}s", url],
            capture_output=True,
            text=True,
            check=True,
        )
        cpu = _tree_cpu(proc.pid) - before
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    found = re.search(r"Requests/sec:\s+([\d.]+)", done.stdout)
    total = re.search(r"(\d+) requests in", done.stdout)
    if found is None or total is None:
        raise SystemExit(f"floor_bench: wrk printed no rate: {done.stdout}")
    requests = int(total.group(1))
    return {"requests_per_s": float(found.group(1)), "cpu_us_per_request": cpu / requests * 1e6}


def _check(cases: list[str]) -> None:
    """One line and exit 2 for an unknown case or a missing tool."""
    unknown = [case for case in cases if case not in CASES]
    if unknown:
        raise SystemExit(f"floor_bench: unknown case {unknown[0]!r}; known: {', '.join(CASES)}")
    if shutil.which("wrk") is None:
        raise SystemExit("floor_bench: wrk not found; install it with `apt-get install wrk`")
    if any(CASES[c][0] == "granian" for c in cases) and find_spec("granian") is None:
        raise SystemExit(
            "floor_bench: granian is not installed; `.venv/bin/pip install granian`, or "
            "leave the granian cases out of --cases"
        )


def main() -> int:
    refuse_live_keys("floor_bench")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    _check(args.cases.split(","))
    results = {}
    print("| case | workers | req/s | server CPU/req |\n| --- | ---: | ---: | ---: |")
    for case in args.cases.split(","):
        result = measure(case, args.workers, args.seconds, args.connections)
        results[case] = result
        print(
            f"| {case} | {args.workers} | {result['requests_per_s']:,.0f} | "
            f"{result['cpu_us_per_request']:.0f} µs |",
            flush=True,
        )
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
