"""`/metrics` and `/health/ready` tell anyone totals only; tenant detail needs an admin key.

Issue 9, item 6: both answered without a key with tenant ids, metric names, price ids
and Stripe's error text, and every client-chosen metric name became a label value
(20,000 names: /metrics 7.6 MB, +33 MB of memory for good).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
import requests

from stripemeter.auth import create_api_key
from stripemeter.ops.metrics import HTTP_METHODS, OTHER_LABEL
from stripemeter.workers import state as worker_state
from tests.stripemeter.conftest import Api, event, start_api

PRICE_B = "price_secretB"
CUSTOMER_B = "cus_secretB"
METRIC_B = "secret_metric_b"
STRIPE_ERROR_B = f"Stripe said quota_exceeded_zq: meter event for {CUSTOMER_B} on {PRICE_B}"


def admin_key(
    db_url: str, tenant: str, scopes: tuple[str, ...] = ("admin", "ingest", "read")
) -> str:
    """A key for `tenant` with `scopes` (every scope by default)."""
    with psycopg.connect(db_url) as conn:
        key = create_api_key(conn, tenant, "metrics", scopes=scopes)
    return key.secret


def test_a_key_without_the_admin_scope_gets_no_tenant_detail(api: Api) -> None:
    reader = admin_key(api.db_url, api.tenant, ("read", "ingest"))
    for path in ("/metrics", "/health/ready"):
        answer = requests.get(
            api.url(path), headers={"Authorization": f"Bearer {reader}"}, timeout=10
        )
        assert answer.status_code == 403, (path, answer.text)
        body = answer.json()
        assert (body["error"]["code"], body["requiredScope"]) == ("forbidden_scope", "admin")


@dataclass
class World:
    """Tenant A (the fixture's key) and tenant B with pending usage and a failing writer."""

    api: Api
    tenant_b: str
    key_b: str


def seed_tenant_b(api: Api) -> World:
    tenant_b = str(uuid.uuid4())
    key_b = admin_key(api.db_url, tenant_b)
    with psycopg.connect(api.db_url) as conn:
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id)"
            " VALUES (%s, %s, 'sum', %s)",
            (tenant_b, METRIC_B, PRICE_B),
        )
        worker_state.record_failure(conn, "writer", tenant_b, STRIPE_ERROR_B)
        conn.execute(
            "INSERT INTO reconciliation_reports (tenant_id, metric, customer_ref,"
            " subscription_item_id, period_start, period_end, local_total, stripe_total,"
            " drift_abs, drift_pct, status) VALUES (%s, %s, %s, 'si_secretB',"
            " '2026-11-01', '2026-12-01', 10, 7, 3, 0.43, 'investigate')",
            (tenant_b, METRIC_B, CUSTOMER_B),
        )
    events = [
        event(tenant_b, metric=METRIC_B, customerRef=CUSTOMER_B, ts=f"2026-11-20T{h:02d}:00:00Z")
        for h in range(3)
    ]
    answer = requests.post(
        api.url("/v1/events/ingest"),
        json={"events": events},
        headers={"Authorization": f"Bearer {key_b}"},
        timeout=30,
    )
    assert answer.status_code == 200 and answer.json()["accepted"] == 3, answer.text
    return World(api=api, tenant_b=tenant_b, key_b=key_b)


@pytest.fixture
def world(api: Api) -> World:
    return seed_tenant_b(api)


def secrets_of(world: World) -> list[str]:
    return [
        world.api.tenant,
        world.tenant_b,
        PRICE_B,
        CUSTOMER_B,
        METRIC_B,
        "si_secretB",
        "quota_exceeded_zq",
    ]


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not in /metrics")


def test_anonymous_metrics_and_readiness_carry_totals_only(world: World) -> None:
    metrics = requests.get(world.api.url("/metrics"), timeout=10)
    ready = requests.get(world.api.url("/health/ready"), timeout=10)
    assert metrics.status_code == 200 and ready.status_code == 200
    for secret in secrets_of(world):
        assert secret not in metrics.text, secret
        assert secret not in ready.text, secret
    assert "tenant_id=" not in metrics.text and "metric=" not in metrics.text
    text = metrics.text
    assert sample(text, "stripemeter_writer_pending_buckets") == 3.0
    assert sample(text, "stripemeter_writer_pending_units") == 3.0
    assert sample(text, "stripemeter_writer_stripe_failing") == 1.0
    assert sample(text, "stripemeter_writer_failing_tenants") == 1.0
    assert sample(text, 'stripemeter_worker_consecutive_failures{component="writer"}') == 1.0
    assert sample(text, "stripemeter_reconciliation_drift_abs") == 3.0
    assert sample(text, 'stripemeter_reconciliation_items{status="investigate"}') == 1.0
    assert sample(text, 'stripemeter_ingest_events_total{outcome="accepted"}') >= 3.0
    body = ready.json()
    assert body["status"] == "degraded"
    assert body["checks"]["stripe_writer"] == {
        "status": "degraded",
        "detail": "Stripe failing for 1 tenant(s)",
    }


def test_an_admin_key_sees_its_own_tenant_only(world: World) -> None:
    as_b = {"Authorization": f"Bearer {world.key_b}"}
    metrics_b = requests.get(world.api.url("/metrics"), headers=as_b, timeout=10).text
    ready_b = requests.get(world.api.url("/health/ready"), headers=as_b, timeout=10).json()
    b = world.tenant_b
    assert sample(metrics_b, f'stripemeter_writer_stripe_failing{{tenant_id="{b}"}}') == 1.0
    assert sample(metrics_b, f'stripemeter_writer_pending_buckets{{tenant_id="{b}"}}') == 3.0
    assert (
        sample(
            metrics_b,
            f'stripemeter_reconciliation_drift_abs{{metric="{METRIC_B}",tenant_id="{b}"}}',
        )
        == 3.0
    )
    assert world.api.tenant not in metrics_b
    [failing] = ready_b["checks"]["stripe_writer"]["tenants"]
    assert (failing["tenantId"], failing["lastError"]) == (b, STRIPE_ERROR_B)
    assert failing["consecutiveFailures"] == 1

    # Tenant A's key (admin of A) learns nothing about B.
    a_key = admin_key(world.api.db_url, world.api.tenant)
    as_a = {"Authorization": f"Bearer {a_key}"}
    metrics_a = requests.get(world.api.url("/metrics"), headers=as_a, timeout=10).text
    ready_a = requests.get(world.api.url("/health/ready"), headers=as_a, timeout=10)
    for secret in (b, PRICE_B, CUSTOMER_B, METRIC_B, "si_secretB"):
        assert secret not in metrics_a, secret
        assert secret not in ready_a.text, secret
    assert ready_a.json()["checks"]["stripe_writer"]["tenants"] == []
    assert not re.search(r'tenant_id="(?!' + world.api.tenant + ")", metrics_a)


@pytest.mark.parametrize("path", ["/metrics", "/health/ready"])
@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer smk_not_a_key", "unknown or revoked API key"),
        ("Basic abc", "malformed Authorization header: expected 'Bearer <secret>'"),
    ],
)
def test_a_bad_key_is_refused_not_shown_less(
    module_api: Api, path: str, header: str, message: str
) -> None:
    answer = requests.get(module_api.url(path), headers={"Authorization": header}, timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"] == {
        "code": "unauthorized",
        "message": message,
        "field": "Authorization",
    }


@pytest.fixture
def detail_api(db_url: str) -> Iterator[Api]:
    with start_api(db_url, METRICS_TENANT_DETAIL=True) as served:
        yield served


def test_the_opt_in_setting_shows_every_tenant_without_a_key(detail_api: Api) -> None:
    world = seed_tenant_b(detail_api)
    metrics = requests.get(detail_api.url("/metrics"), timeout=10).text
    ready = requests.get(detail_api.url("/health/ready"), timeout=10).json()
    b = world.tenant_b
    assert sample(metrics, f'stripemeter_writer_stripe_failing{{tenant_id="{b}"}}') == 1.0
    assert sample(metrics, "stripemeter_writer_failing_tenants") == 1.0
    assert [t["tenantId"] for t in ready["checks"]["stripe_writer"]["tenants"]] == [b]
    assert STRIPE_ERROR_B in ready["checks"]["stripe_writer"]["detail"]


MAX_LABELS = 50


def test_two_thousand_metric_names_do_not_grow_metrics(api: Api) -> None:
    before = requests.get(api.url("/metrics"), timeout=10)
    names = [f"m{i:05d}_{uuid.uuid4().hex[:8]}" for i in range(2000)]
    for start in range(0, len(names), 500):
        batch = [
            event(api.tenant, metric=name, idempotencyKey=name)
            for name in names[start : start + 500]
        ]
        answer = api.post("/v1/events/ingest", json={"events": batch})
        assert answer.status_code == 200 and answer.json()["accepted"] == 500
    # Mapped metrics reach the admin's detail through reconciliation reports: capped too.
    with psycopg.connect(api.db_url) as conn:
        conn.execute(
            "INSERT INTO reconciliation_reports (tenant_id, metric, customer_ref,"
            " subscription_item_id, period_start, period_end, local_total, stripe_total,"
            " drift_abs, drift_pct, status) SELECT %s, 'r' || i, 'c' || i, 'si', '2026-11-01',"
            " '2026-12-01', 2, 1, 1, 1, 'investigate' FROM generate_series(1, 2000) AS i",
            (api.tenant,),
        )
    after = requests.get(api.url("/metrics"), timeout=10)
    admin = requests.get(
        api.url("/metrics"),
        headers={"Authorization": f"Bearer {admin_key(api.db_url, api.tenant)}"},
        timeout=10,
    )
    for answer in (after, admin):
        assert answer.status_code == 200
        # Growth, not size: the registry is the process's, and other tests' requests add
        # their (bounded) route series to it before this test runs.
        grown = len(answer.content) - len(before.content)
        assert grown < 48 * 1024, grown
        assert not any(name in answer.text for name in names)
        metric_values = set(re.findall(r'metric="([^"]*)"', answer.text))
        assert len(metric_values) <= MAX_LABELS + 1
    drift_other = f'stripemeter_reconciliation_drift_abs{{metric="other",tenant_id="{api.tenant}"}}'
    assert sample(admin.text, drift_other) == 2000.0 - MAX_LABELS
    # Anonymous: the same few families before and after, whatever the names.
    assert len(after.content) < len(before.content) + 2 * 1024
    methods = set(re.findall(r'method="([^"]*)"', after.text))
    # The registry is the process's: other tests' PUTs and DELETEs show here too.
    assert methods <= HTTP_METHODS | {OTHER_LABEL}, methods
    assert sample(after.text, 'stripemeter_ingest_events_total{outcome="accepted"}') >= 2000
