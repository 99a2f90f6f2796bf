"""The Done-when test of webhooks: the emulator delivers `invoice.created` and
`invoice.finalized` to the real API on 127.0.0.1, and the workers (in-process, polling
intervals of 10 minutes) flush and reconcile at once. Real emulator, real HTTP, real
PostgreSQL; the latencies are printed (run with -s to see them).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import requests

from stripemeter.api.app import create_app
from stripemeter.workers.loop import start_in_background
from tests.stripemeter.webhooks.signing import signed_post
from tests.stripemeter.workers.test_workers import REPO, writer_env
from tests.support.servers import free_port, serve_asgi
from tests.support.stripe_world import (
    HOUR,
    build_world,
    ingest,
    meter_events_in_stripe,
    settings_for,
    usage_event,
)

T = TypeVar("T")
TEN_MINUTES_MS = 600_000


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.02)


def webhook_rows(db_url: str, kind: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "SELECT event_id, action, status, invoice_id, received_at, processed_at, error,"
            " attempts FROM stripe_webhook_events WHERE type = %s ORDER BY received_at",
            (kind,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def http_seconds(api: str, route: str) -> float:
    """Mean answer time of POST `route` from the API's own histogram (/metrics)."""
    text = requests.get(f"{api}/metrics", timeout=10).text
    labels = f'{{method="POST",route="{route}"}}'
    values = {
        name: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        for name in ("_sum", "_count")
        if line.startswith(f"stripemeter_http_request_duration_seconds{name}{labels}")
    }
    return values["_sum"] / values["_count"]


def first_sent_at(db_url: str) -> Any:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT min(sent_at) FROM meter_pushes WHERE status = 'sent'").fetchone()
    return None if row is None else row[0]


def final_reports(db_url: str, period_end: int) -> list[dict[str, Any]]:
    with psycopg.connect(db_url) as conn:
        cur = conn.execute(
            "SELECT local_total, invoice_quantity, drift_abs, status, created_at"
            " FROM reconciliation_reports WHERE final AND period_end = to_timestamp(%s)"
            " ORDER BY created_at",
            (period_end,),
        )
        names = [c.name for c in cur.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def test_invoice_created_flushes_and_finalized_reconciles_without_waiting_for_polling(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer, start, end = world.customers[0], world.period_start, world.period_end
    port = free_port()
    endpoint = world.client.v1.webhook_endpoints.create(
        {
            "url": f"http://127.0.0.1:{port}/v1/stripe/webhooks",
            "enabled_events": ["invoice.created", "invoice.finalized"],
        }
    )
    secret = str(endpoint.secret)
    settings = settings_for(
        emulator_url,
        db_url,
        STRIPE_WEBHOOK_SECRET=secret,
        STRIPE_WRITER_INTERVAL_MS=TEN_MINUTES_MS,
        RECONCILIATION_INTERVAL_MS=TEN_MINUTES_MS,
    )
    with serve_asgi(create_app(settings, db_url=db_url), port=port) as api:
        workers = start_in_background(settings, db_url)
        try:
            time.sleep(1.0)  # the loops' first passes, on nothing; then 10 minutes of quiet
            frozen = world.frozen_time()
            usage = [
                usage_event(world, customer, frozen - 2 * HOUR, 7, "wh-1"),
                usage_event(world, customer, frozen - HOUR, 5, "wh-2"),
            ]
            assert ingest(api, usage) == (2, 0)
            time.sleep(0.5)
            assert meter_events_in_stripe(emulator_url) == []  # polling would take 10 min

            world.advance(end)  # the period ends: a draft renewal invoice, invoice.created
            created = wait_for(
                "invoice.created worked",
                lambda: (
                    [r for r in webhook_rows(db_url, "invoice.created") if r["status"] == "done"]
                    or None
                ),
            )
            assert [(r["action"], r["error"]) for r in created] == [("flush", None)]
            pushed_at = wait_for("usage pushed", lambda: first_sent_at(db_url))
            flush_latency = (pushed_at - created[0]["received_at"]).total_seconds()
            assert len(meter_events_in_stripe(emulator_url)) == 2
            assert world.stripe_total(customer, start - start % 60, end - end % 60 + 60) == 12

            world.advance(end + HOUR + 1)  # past the grace hour: invoice.finalized
            finalized = wait_for(
                "invoice.finalized worked",
                lambda: (
                    [r for r in webhook_rows(db_url, "invoice.finalized") if r["status"] == "done"]
                    or None
                ),
            )
            assert [(r["action"], r["error"]) for r in finalized] == [("reconcile", None)]
            reports = wait_for("final report", lambda: final_reports(db_url, end) or None)
            report = reports[0]
            reconcile_latency = (report["created_at"] - finalized[0]["received_at"]).total_seconds()
            assert (report["local_total"], report["invoice_quantity"]) == (12, 12)
            assert (report["drift_abs"], report["status"]) == (0, "ok")
            print(
                f"\nwebhook latency: invoice.created received -> first push sent "
                f"{flush_latency * 1000:.0f} ms; invoice.finalized received -> final report "
                f"{reconcile_latency * 1000:.0f} ms (polling intervals: 10 min)"
            )
            assert flush_latency < 10 and reconcile_latency < 10

            # The same event ids again: 200, duplicate, nothing run twice.
            for row in (created[0], finalized[0]):
                again = world.client.v1.events.retrieve(row["event_id"])
                answer = signed_post(api, secret, json.loads(str(again)))
                assert answer.status_code == 200, answer.text
                assert answer.json()["duplicate"] is True
            time.sleep(1.0)
            for kind in ("invoice.created", "invoice.finalized"):
                assert [(r["status"], r["attempts"]) for r in webhook_rows(db_url, kind)] == [
                    ("done", 1)
                ]
            assert len(meter_events_in_stripe(emulator_url)) == 2
            assert len(final_reports(db_url, end)) == 1

            # Stripe's side: every delivery acknowledged at its first attempt, quickly.
            deliveries = requests.get(f"{emulator_url}/_emulator/webhook_deliveries", timeout=10)
            ours = [d for d in deliveries.json()["deliveries"] if d["endpoint"] == endpoint.id]
            assert {(d["type"], d["attempt"], d["status_code"]) for d in ours} == {
                ("invoice.created", 1, 200),
                ("invoice.finalized", 1, 200),
            }
            answer_s = http_seconds(api, "/v1/stripe/webhooks")
            print(f"webhook answers: {answer_s * 1000:.1f} ms on average")
            assert answer_s < 0.5
        finally:
            workers.stop()
            world.client.v1.webhook_endpoints.delete(endpoint.id)


def test_workers_in_a_separate_process_are_woken_by_the_apis_notify(
    emulator_url: str, db_url: str, tmp_path: Path
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    secret = "whsec_separate_processes"
    settings = settings_for(emulator_url, db_url, STRIPE_WEBHOOK_SECRET=secret)
    env = writer_env(
        emulator_url,
        db_url,
        STRIPE_WRITER_INTERVAL_MS=str(TEN_MINUTES_MS),
        RECONCILIATION_INTERVAL_MS=str(TEN_MINUTES_MS),
    )
    # This checkout's code, whatever the environment's editable install points at.
    env["PYTHONPATH"] = os.pathsep.join((str(REPO / "src"), str(REPO)))
    workers = subprocess.Popen(
        [sys.executable, "-m", "stripemeter.workers.loop"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with serve_asgi(create_app(settings, db_url=db_url)) as api:
            time.sleep(2.0)  # the workers' first passes, on nothing
            frozen = world.frozen_time()
            ingest(api, [usage_event(world, customer, frozen - HOUR, 9, "sep-1")])
            time.sleep(0.5)
            assert meter_events_in_stripe(emulator_url) == []
            event = {
                "id": "evt_separate_1",
                "type": "invoice.created",
                "data": {
                    "object": {
                        "id": "in_sep",
                        "customer": customer,
                        "status": "draft",
                        "parent": {"subscription_details": {"subscription": "sub_sep"}},
                    }
                },
            }
            sent = time.monotonic()
            answer = signed_post(api, secret, event)
            assert (answer.status_code, answer.json()["status"]) == (200, "pending"), answer.text
            wait_for(
                "pushed by the other process", lambda: meter_events_in_stripe(emulator_url) or None
            )
            latency = time.monotonic() - sent
            print(f"\nseparate workers process: webhook answered -> pushed {latency * 1000:.0f} ms")
            assert latency < 10
            rows = webhook_rows(db_url, "invoice.created")
            wait_for(
                "row done",
                lambda: webhook_rows(db_url, "invoice.created")[0]["status"] == "done" or None,
            )
            assert [r["event_id"] for r in rows] == ["evt_separate_1"]
            now = world.frozen_time()
            assert (
                world.stripe_total(customer, world.period_start // 60 * 60, now // 60 * 60 + 60)
                == 9
            )
    finally:
        workers.send_signal(signal.SIGTERM)
        _out, err = workers.communicate(timeout=60)
    assert workers.returncode == 0, err[-2000:]
