"""Latency of typical SDK calls against a real stripe-emulator process on 127.0.0.1.

Starts `python -m stripe_emulator.cli` on a free loopback port, drives it with the
official `stripe` SDK (one client, no retries), and prints p50/p95/max per call as a
table and as JSON. A second table times the same operations inside the process through
the ASGI interface only (no sockets, no SDK): the emulator's own share of each call, which
does not depend on how loaded the machine's network stack and CPUs are. Bounded:
`--calls` per operation (default 300), then the emulator is stopped.

    .venv/bin/python bench/emulator_bench.py [--calls 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import requests
import stripe
from _testmode import refuse_live_keys


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "stripe_emulator.cli", "--port", str(port)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("emulator did not start")


def _time(fn: Callable[[int], Any], calls: int) -> list[float]:
    fn(-1)  # warm-up
    out = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _asgi_call(app: Any, method: str, path: str, query: str = "", body: str = "") -> bytes:
    """One request through the ASGI interface; returns the response body."""
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"authorization", b"Bearer sk_test_bench")],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body.encode(), "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200, sent[1]["body"]
    return bytes(sent[1]["body"])


def _in_process(calls: int) -> dict[str, dict[str, float]]:
    """Handler-only latency of the same operations (no HTTP, no SDK)."""
    from stripe_emulator.app import create_app

    app = create_app()

    def post(path: str, body: str) -> Any:
        return json.loads(_asgi_call(app, "POST", path, body=body))

    meter = post(
        "/v1/billing/meters", "display_name=b&event_name=bench&default_aggregation[formula]=sum"
    )
    product = post("/v1/products", "name=bench")
    price = post(
        "/v1/prices",
        f"currency=usd&product={product['id']}&unit_amount=1&recurring[interval]=month"
        f"&recurring[usage_type]=metered&recurring[meter]={meter['id']}",
    )
    cus = post("/v1/customers", "email=bench%40example.com")
    post("/v1/subscriptions", f"customer={cus['id']}&items[0][price]={price['id']}")
    now = int(time.time())
    start = (now - 86400) // 60 * 60
    ops: dict[str, Callable[[int], Any]] = {
        "customers.create": lambda i: _asgi_call(
            app, "POST", "/v1/customers", body=f"email=c{i}%40example.com"
        ),
        "customers.retrieve": lambda i: _asgi_call(app, "GET", f"/v1/customers/{cus['id']}"),
        "meter_events.create": lambda i: _asgi_call(
            app,
            "POST",
            "/v1/billing/meter_events",
            body=f"event_name=bench&identifier=b{i}&timestamp={now - 60}"
            f"&payload[stripe_customer_id]={cus['id']}&payload[value]=1",
        ),
        "event_summaries.list": lambda i: _asgi_call(
            app,
            "GET",
            f"/v1/billing/meters/{meter['id']}/event_summaries",
            f"customer={cus['id']}&start_time={start}&end_time={start + 86400 + 120}",
        ),
        "invoices.list": lambda i: _asgi_call(app, "GET", "/v1/invoices", f"customer={cus['id']}"),
    }
    return {name: _summarize(_time(fn, calls)) for name, fn in ops.items()}


def _summarize(samples: list[float]) -> dict[str, float]:
    return {
        "calls": len(samples),
        "p50_ms": round(statistics.median(samples), 3),
        "p95_ms": round(_pct(samples, 0.95), 3),
        "max_ms": round(max(samples), 3),
    }


def _table(title: str, results: dict[str, dict[str, float]]) -> None:
    print(title)
    print(f"{'call':<24}{'calls':>7}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for name, row in results.items():
        print(
            f"{name:<24}{row['calls']:>7}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['max_ms']:>10}"
        )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    """Run the benchmark and print its table and JSON."""
    refuse_live_keys("emulator_bench")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    calls = max(10, min(args.calls, 5000))
    port = _free_port()
    proc = _start(port)
    try:
        client = stripe.StripeClient(
            "sk_test_bench",
            base_addresses={"api": f"http://127.0.0.1:{port}"},
            max_network_retries=0,
        )
        meter = client.v1.billing.meters.create(
            {"display_name": "b", "event_name": "bench", "default_aggregation": {"formula": "sum"}}
        )
        product = client.v1.products.create({"name": "bench"})
        price = client.v1.prices.create(
            {
                "currency": "usd",
                "product": product.id,
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
            }
        )
        cus = client.v1.customers.create({"email": "bench@example.com"})
        client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
        now = int(time.time())
        start = (now - 86400) // 60 * 60
        ops: dict[str, Callable[[int], Any]] = {
            # The floor: SDK + HTTP round trip to an endpoint that does no work.
            "floor: GET health": lambda i: client.raw_request("get", "/_emulator/health"),
            "customers.create": lambda i: client.v1.customers.create(
                {"email": f"c{i}@example.com"}
            ),
            "customers.retrieve": lambda i: client.v1.customers.retrieve(cus.id),
            "meter_events.create": lambda i: client.v1.billing.meter_events.create(
                {
                    "event_name": "bench",
                    "identifier": f"bench-{i}",
                    "timestamp": now - 60,
                    "payload": {"stripe_customer_id": cus.id, "value": "1"},
                }
            ),
            "event_summaries.list": lambda i: client.v1.billing.meters.event_summaries.list(
                meter.id, {"customer": cus.id, "start_time": start, "end_time": start + 86400 + 120}
            ),
            "invoices.list": lambda i: client.v1.invoices.list({"customer": cus.id}),
        }
        over_http = {name: _summarize(_time(fn, calls)) for name, fn in ops.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    in_process = _in_process(calls)
    load = os.getloadavg()[0]
    _table(
        f"SDK over HTTP on 127.0.0.1 (load average {load:.2f}, {os.cpu_count()} CPUs)", over_http
    )
    print()
    _table("inside the emulator (ASGI call, no sockets, no SDK)", in_process)
    print(
        json.dumps(
            {
                "emulator_sdk_latency_http": over_http,
                "emulator_handler_latency": in_process,
                "load_average_1m": round(load, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
