"""Isolation under a slow Stripe (issue 9, item 5): one tenant cannot take the API down.

Real API over HTTP with real keys, real PostgreSQL, the real emulator hanging every
Stripe call through its `delay_ms` fault rule. Tenant A floods
`POST /v1/reconciliation/run`; tenant B's ingest and reads must keep answering 200
within seconds, `?wait=true` must answer within its bound, and A's runs coalesce into
one run id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import requests
import stripe
from fastapi import FastAPI

from stripemeter.api.app import create_app
from stripemeter.auth import create_api_key
from stripemeter.config import Settings, load_settings
from stripemeter.stripe.client import client_for_settings
from tests.support.emulator import TEST_KEY
from tests.support.servers import serve_asgi
from tests.support.stripe_world import HOUR, build_world, fault, usage_event

STRIPE_TIMEOUT_S = 3.0
WAIT_S = 2.0
HANG = {"method": "*", "path": "/v1/*", "status": 503, "count": 100_000, "delay_ms": 10_000}


@dataclass
class Served:
    """The running API, its app (to look at its pools) and its database."""

    base: str
    app: FastAPI
    db_url: str


def _settings(emulator_url: str, db_url: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "STRIPE_TIMEOUT_S": STRIPE_TIMEOUT_S,
        "RECONCILIATION_WAIT_S": WAIT_S,
        "DB_POOL_MAX_SIZE": 4,
        **extra,
    }
    return load_settings(
        DATABASE_URL=db_url, STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY, **values
    )


@contextmanager
def serve(settings: Settings, db_url: str) -> Iterator[Served]:
    app = create_app(settings, db_url=db_url)
    with serve_asgi(app) as base:
        yield Served(base, app, db_url)


def key(db_url: str, tenant: uuid.UUID, *scopes: str) -> dict[str, str]:
    with psycopg.connect(db_url) as conn:
        created = create_api_key(conn, tenant, "isolation", scopes=scopes)
    return {"Authorization": f"Bearer {created.secret}"}


def add_mapping(db_url: str, tenant: uuid.UUID, price_id: str) -> None:
    """A mapping row for another tenant (DB only): its run has Stripe calls to make."""
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account,"
            " price_id, currency, active) VALUES (%s, 'api_calls', 'sum', 'default', %s,"
            " 'usd', true)",
            (tenant, price_id),
        )


def post_run(
    base: str, tenant: uuid.UUID, headers: dict[str, str], *, wait: bool = False
) -> requests.Response:
    return requests.post(
        f"{base}/v1/reconciliation/run",
        params={"wait": "true"} if wait else None,
        json={"tenantId": str(tenant)},
        headers=headers,
        timeout=30,
    )


def get_run(base: str, run_id: str, headers: dict[str, str]) -> requests.Response:
    return requests.get(f"{base}/v1/reconciliation/runs/{run_id}", headers=headers, timeout=10)


def checked_out(app: FastAPI, pool: str) -> int:
    """Connections of one of the app's pools lent out right now."""
    stats = getattr(app.state, pool).get_stats()
    return int(stats.get("pool_size", 0)) - int(stats.get("pool_available", 0))


def test_every_stripe_call_times_out_after_the_setting(emulator_url: str, db_url: str) -> None:
    fault(emulator_url, **{**HANG, "delay_ms": 8_000})
    client = client_for_settings(_settings(emulator_url, db_url, STRIPE_TIMEOUT_S=1.0))
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.list()
    assert time.monotonic() - started < 3.0


def test_a_flood_of_runs_under_hanging_stripe_leaves_other_tenants_served(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    tenant_a, tenant_b = world.tenant_id, str(uuid.uuid4())
    others = [str(uuid.uuid4()) for _ in range(6)]
    for other in others:
        add_mapping(db_url, other, world.price_id)
    a_admin = key(db_url, tenant_a, "ingest", "read", "admin")
    b_keys = key(db_url, tenant_b, "ingest", "read")
    other_keys = {t: key(db_url, t, "read", "admin") for t in others}
    now = int(time.time())

    with serve(_settings(emulator_url, db_url), db_url) as api:
        fault(emulator_url, **HANG)

        def b_ingest(n: int) -> tuple[int, float]:
            started = time.monotonic()
            answer = requests.post(
                f"{api.base}/v1/events/ingest",
                json={
                    "events": [
                        {
                            "tenantId": str(tenant_b),
                            "metric": "api_calls",
                            "customerRef": "cus_b",
                            "quantity": 1,
                            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - HOUR)),
                            "idempotencyKey": f"b-{n}",
                        }
                    ]
                },
                headers=b_keys,
                timeout=10,
            )
            return answer.status_code, time.monotonic() - started

        def b_read(_: int) -> tuple[int, float]:
            started = time.monotonic()
            answer = requests.get(
                f"{api.base}/v1/events",
                params={"tenantId": str(tenant_b)},
                headers=b_keys,
                timeout=10,
            )
            return answer.status_code, time.monotonic() - started

        with ThreadPoolExecutor(max_workers=24) as pool:
            a_runs = [pool.submit(post_run, api.base, tenant_a, a_admin) for _ in range(50)]
            other_runs = [
                pool.submit(post_run, api.base, t, other_keys[t]) for t in others for _ in range(3)
            ]
            b_calls = [pool.submit(b_ingest, n) for n in range(25)]
            b_calls += [pool.submit(b_read, n) for n in range(25)]
            a_answers = [f.result() for f in a_runs]
            other_answers = [f.result() for f in other_runs]
            b_results = [f.result() for f in b_calls]

        # Tenant B was served throughout: every request 200, each within seconds.
        assert [status for status, _ in b_results] == [200] * 50
        assert max(elapsed for _, elapsed in b_results) < 3.0
        # A's 50 requests are one run: same id, 202, only the first one created it.
        assert [a.status_code for a in a_answers] == [202] * 50
        a_ids = {a.json()["runId"] for a in a_answers}
        assert len(a_ids) == 1
        assert sorted(a.json()["coalesced"] for a in a_answers) == [False] + [True] * 49
        (a_run,) = a_ids
        # Every other tenant has exactly one run too, none shared with another tenant.
        other_ids = {o.json()["runId"] for o in other_answers}
        assert [o.status_code for o in other_answers] == [202] * len(other_answers)
        assert len(other_ids) == len(others) and a_run not in other_ids
        # Bounded: never more runs executing than threads, the rest queued.
        a_status = get_run(api.base, a_run, a_admin).json()["status"]
        with psycopg.connect(db_url) as conn:
            counts = dict(
                conn.execute(
                    "SELECT status, count(*) FROM reconciliation_runs GROUP BY status"
                ).fetchall()
            )
        assert counts.get("running", 0) <= 2
        assert counts.get("running", 0) + counts.get("queued", 0) == 1 + len(others)
        assert a_status in ("queued", "running")

        # The runs are stuck in Stripe calls, and hold no connection meanwhile.
        samples = []
        for _ in range(5):
            samples.append(checked_out(api.app, "background_pool"))
            time.sleep(0.1)
        assert samples == [0] * 5

        # ?wait=true answers within its bound (+2 s), 202 with the same run id.
        started = time.monotonic()
        waited = post_run(api.base, tenant_a, a_admin, wait=True)
        elapsed = time.monotonic() - started
        assert waited.status_code == 202, waited.text
        assert elapsed < WAIT_S + 2.0
        body = waited.json()
        assert (body["runId"], body["coalesced"]) == (a_run, True)
        assert body["status"] in ("queued", "running")

        # Another tenant cannot see A's run (404, as if it did not exist).
        hidden = get_run(api.base, a_run, b_keys)
        assert (hidden.status_code, hidden.json()["error"]["code"]) == (404, "run_not_found")

        # Stripe recovers: A's run finishes, and a new request starts a new run.
        requests.delete(f"{emulator_url}/_emulator/faults", timeout=5).raise_for_status()
        deadline = time.monotonic() + 60
        final: dict[str, Any] = {}
        while time.monotonic() < deadline:
            final = get_run(api.base, a_run, a_admin).json()
            if final["status"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert final["status"] in ("done", "failed"), final
        again = post_run(api.base, tenant_a, a_admin)
        assert again.status_code == 202
        assert (again.json()["coalesced"], again.json()["runId"] != a_run) == (False, True)


def test_wait_returns_the_reports_and_the_run_keeps_them(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=2)
    admin = key(db_url, world.tenant_id, "ingest", "read", "admin")
    reader = key(db_url, world.tenant_id, "read")
    frozen = world.frozen_time()
    with serve(_settings(emulator_url, db_url, RECONCILIATION_WAIT_S=60), db_url) as api:
        for n, customer in enumerate(world.customers):
            answer = requests.post(
                f"{api.base}/v1/events/ingest",
                json={"events": [usage_event(world, customer, frozen - HOUR, 3 + n, f"k{n}")]},
                headers=admin,
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
        done = post_run(api.base, world.tenant_id, admin, wait=True)
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["status"], body["reportCount"], body["error"]) == ("done", 2, None)
        assert sorted(r["local"] for r in body["reports"]) == ["3", "4"]
        assert {r["status"] for r in body["reports"]} == {"investigate"}  # nothing pushed yet

        status = get_run(api.base, body["runId"], reader)
        assert status.status_code == 200
        kept = status.json()
        assert (kept["status"], kept["reportCount"]) == ("done", 2)
        assert [r["id"] for r in kept["reports"]] == [r["id"] for r in body["reports"]]
        assert kept["startedAt"] is not None and kept["finishedAt"] is not None

        # A read-only key may follow runs but not start them.
        refused = post_run(api.base, world.tenant_id, reader)
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden_scope")
        missing = get_run(api.base, str(uuid.uuid4()), reader)
        assert (missing.status_code, missing.json()["error"]["field"]) == (404, "runId")
        malformed = get_run(api.base, "not-a-uuid", reader)
        assert (malformed.status_code, malformed.json()["error"]["field"]) == (400, "runId")


def test_a_run_stripe_refuses_is_422_naming_the_refusal_not_an_outage(
    emulator_url: str, db_url: str
) -> None:
    tenant = str(uuid.uuid4())
    admin = key(db_url, tenant, "read", "admin")
    add_mapping(db_url, tenant, "price_that_does_not_exist")
    with serve(_settings(emulator_url, db_url, RECONCILIATION_WAIT_S=30), db_url) as api:
        answer = post_run(api.base, tenant, admin, wait=True)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"]["code"] == "stripe_refused"
    assert "price_that_does_not_exist" in body["error"]["message"]
    assert body["runId"]
