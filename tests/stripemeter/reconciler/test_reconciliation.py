"""Reconciliation end to end: periods from Stripe, a finalized invoice on a test clock,
drift found and reported through the API, CSV and metrics; failures answer 5xx."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import requests

from stripemeter.writer.passes import drain
from tests.support.servers import free_port
from tests.support.stripe_world import (
    HOUR,
    build_world,
    ingest,
    running_api,
    settings_for,
    usage_event,
)


def run(api: str, tenant: str) -> list[dict[str, Any]]:
    answer = requests.post(
        f"{api}/v1/reconciliation/run",
        params={"wait": "true"},
        json={"tenantId": tenant},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    reports: list[dict[str, Any]] = answer.json()["reports"]
    return reports


def by_customer(reports: list[dict[str, Any]], period_start: str) -> dict[str, dict[str, Any]]:
    return {r["customerRef"]: r for r in reports if r["periodStart"] == period_start}


def iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def test_closed_period_matches_the_invoice_and_drift_is_found(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=2, clock_start_ago_s=30 * HOUR)
    clean, tampered = world.customers
    settings = settings_for(emulator_url, db_url)
    tenant = str(world.tenant_id)
    frozen = world.frozen_time()
    period = iso(world.period_start)
    month = period[:7]
    events = [
        usage_event(world, customer, frozen - h * HOUR - 60 * k, 3 + h + k, f"{customer}-{h}-{k}")
        for customer in world.customers
        for h in range(0, 20, 3)
        for k in range(2)
    ]
    local = {
        c: sum(Decimal(e["quantity"]) for e in events if e["customerRef"] == c)
        for c in world.customers
    }

    with running_api(settings, db_url) as api:
        ingest(api, events)
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
        # Usage sent to Stripe behind the writer's back.
        world.client.v1.billing.meter_events.create(
            {
                "event_name": world.event_name,
                "identifier": "rogue-1",
                "timestamp": frozen - 1800,
                "payload": {"stripe_customer_id": tampered, "value": "7"},
            }
        )

        current = by_customer(run(api, tenant), period)
        assert current[clean]["status"] == "ok"
        assert (current[clean]["local"], current[clean]["stripe"]) == (str(local[clean]),) * 2
        assert current[clean]["final"] is False
        assert current[tampered]["status"] == "investigate"
        assert current[tampered]["drift_abs"] == "7"

        world.advance(world.period_end + 2 * HOUR)
        reports = run(api, tenant)
        closed = by_customer(reports, period)
        ok = closed[clean]
        assert (ok["status"], ok["final"], ok["drift_abs"], ok["drift_pct"]) == (
            "ok",
            True,
            "0",
            "0",
        )
        assert ok["invoiceQuantity"] == ok["local"] == str(local[clean])
        assert ok["invoiceId"].startswith("in_")
        bad = closed[tampered]
        assert (bad["status"], bad["final"], bad["drift_abs"]) == ("investigate", True, "7")
        assert bad["invoiceQuantity"] == str(local[tampered] + 7)
        invoice = world.client.v1.invoices.retrieve(ok["invoiceId"])
        assert invoice.status in ("open", "paid")
        # The new period (from Stripe, not the wall clock) has no usage yet: ok.
        new_period = iso(world.period_end)
        assert {r["status"] for r in by_customer(reports, new_period).values()} == {"ok"}

        stripe_total = local[clean] + local[tampered] + 7
        summary = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={"tenantId": tenant, "periodStart": month, "periodEnd": month},
            timeout=10,
        )
        assert summary.status_code == 200, summary.text
        body = summary.json()
        assert body["overall"]["drift_abs"] == 7
        assert body["overall"]["drift_pct"] == float(
            (7 / stripe_total).quantize(Decimal("0.000001"))
        )
        assert body["overall"]["local"] == local[clean] + local[tampered]
        assert body["overall"]["stripe"] == stripe_total
        assert (body["overall"]["items"], body["overall"]["metrics"]) == (2, 1)
        assert body["perMetric"][0]["metric"] == "api_calls"
        assert body["perMetric"][0]["drift_abs"] == 7

        csv_text = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={"tenantId": tenant, "periodStart": month, "periodEnd": month, "format": "csv"},
            timeout=10,
        )
        assert csv_text.headers["content-type"].startswith("text/csv")
        lines = csv_text.text.strip().splitlines()
        assert lines[0] == "metric,local,stripe,drift_abs,drift_pct,items"
        assert lines[-1].startswith(f"TOTAL,{local[clean] + local[tampered]},{stripe_total},7,")
        assert lines[-1].endswith(",2")

        window = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={
                "tenantId": tenant,
                "from": iso(world.period_start),
                "to": iso(world.period_end + 2 * HOUR),
            },
            timeout=10,
        ).json()
        assert window["overall"]["drift_abs"] == 7
        assert window["overall"]["items"] == 4  # closed and new period, two customers

        listed = requests.get(
            f"{api}/v1/reconciliation/{month}", params={"tenantId": tenant}, timeout=10
        )
        assert listed.status_code == 200
        assert sorted(r["status"] for r in listed.json()["reports"]) == ["investigate", "ok"]

        metrics = requests.get(f"{api}/metrics", timeout=10).text
        assert (
            f'stripemeter_reconciliation_drift_abs{{metric="api_calls",tenant_id="{tenant}"}} 7.0'
            in metrics
        )

        # A late event for the closed period: kept, not pushed, reported post_close.
        ingest(api, [usage_event(world, clean, frozen - 2 * HOUR, 5, "late-after-close")])
        with psycopg.connect(db_url) as conn:
            late = drain(conn, world.gateway(), settings)
            proposed = conn.execute(
                "SELECT customer_ref, kind, quantity, status FROM corrections"
            ).fetchall()
        assert (late.events_sent, late.post_close) == (0, 1)
        # The Stripe-added 7 units of the tampered customer: a credit note is proposed.
        assert proposed == [(tampered, "credit_note", Decimal(7), "proposed")]
        status = requests.get(
            f"{api}/v1/writer/status", params={"tenantId": tenant}, timeout=10
        ).json()
        assert status["pendingBuckets"] == 0
        after = by_customer(run(api, tenant), period)
        assert (after[clean]["status"], after[clean]["drift_abs"]) == ("post_close", "5")
        assert tampered not in after  # its final report is still current
        with psycopg.connect(db_url) as conn:
            proposed = conn.execute(
                "SELECT customer_ref, kind, quantity, amount, status FROM corrections"
                " ORDER BY customer_ref = %s",
                (clean,),
            ).fetchall()
        assert proposed == [
            (tampered, "credit_note", Decimal(7), 35, "proposed"),
            (clean, "invoice_item", Decimal(5), 25, "proposed"),
        ]


def test_summary_refuses_to_make_up_an_answer(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    tenant = str(world.tenant_id)
    dead_stripe = f"http://127.0.0.1:{free_port()}"
    settings = settings_for(dead_stripe, db_url)
    params = {"tenantId": tenant, "periodStart": "2026-11", "periodEnd": "2026-11"}
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, world.customers[0], world.frozen_time() - HOUR, 2, "x")])
        none_yet = requests.get(f"{api}/v1/reconciliation/summary", params=params, timeout=10)
        assert none_yet.status_code == 404
        assert none_yet.json()["error"]["code"] == "no_reports"

        failed = requests.post(
            f"{api}/v1/reconciliation/run",
            params={"wait": "true"},
            json={"tenantId": tenant},
            timeout=120,
        )
        assert failed.status_code == 503
        assert failed.json()["error"]["code"] == "stripe_unavailable"
        assert "APIConnectionError" in failed.json()["error"]["message"]

        after_failure = requests.get(f"{api}/v1/reconciliation/summary", params=params, timeout=10)
        assert after_failure.status_code == 503
        assert after_failure.json()["error"]["code"] == "reconciliation_failed"

        accepted = requests.post(
            f"{api}/v1/reconciliation/run", json={"tenantId": tenant}, timeout=10
        )
        assert accepted.status_code == 202
        queued = accepted.json()
        assert (queued["tenantId"], queued["status"], queued["coalesced"]) == (
            tenant,
            "queued",
            False,
        )
        assert queued["statusUrl"] == f"/v1/reconciliation/runs/{queued['runId']}"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"periodStart": "2026-13", "periodEnd": "2026-12"}, "periodStart"),
        ({"periodStart": "2026-11"}, "periodEnd"),
        ({"periodStart": "2026-11", "periodEnd": "2026-10"}, "periodEnd"),
        ({"from": "2026-11-01T00:00:00Z"}, "to"),
        ({"from": "2026-11-02T00:00:00Z", "to": "2026-11-01T00:00:00Z"}, "to"),
        (
            {"periodStart": "2026-11", "periodEnd": "2026-11", "from": "2026-11-01T00:00:00Z"},
            "from",
        ),
        ({}, "from"),
    ],
)
def test_bad_summary_windows_are_refused_naming_the_field(
    db_url: str, params: dict[str, str], field: str
) -> None:
    settings = settings_for("http://127.0.0.1:9", db_url)
    with running_api(settings, db_url) as api:
        answer = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={"tenantId": "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11", **params},
            timeout=10,
        )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field


def test_bad_run_bodies_and_months_are_refused(db_url: str) -> None:
    settings = settings_for("http://127.0.0.1:9", db_url)
    with running_api(settings, db_url) as api:
        no_tenant = requests.post(f"{api}/v1/reconciliation/run", json={}, timeout=10)
        bad_tenant = requests.post(
            f"{api}/v1/reconciliation/run", json={"tenantId": "t" * 65}, timeout=10
        )
        bad_month = requests.get(
            f"{api}/v1/reconciliation/2026-1",
            params={"tenantId": "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11"},
            timeout=10,
        )
    assert (no_tenant.status_code, no_tenant.json()["error"]["field"]) == (400, "tenantId")
    assert (bad_tenant.status_code, bad_tenant.json()["error"]["field"]) == (400, "tenantId")
    assert (bad_month.status_code, bad_month.json()["error"]["field"]) == (400, "month")


def test_database_down_gives_503_for_summary_and_readiness(pg_server_url: str) -> None:
    dead_db = f"host=127.0.0.1 port={free_port()} user=postgres dbname=nothing connect_timeout=1"
    settings = settings_for("http://127.0.0.1:9", dead_db)
    with running_api(settings, dead_db) as api:
        ready = requests.get(f"{api}/health/ready", timeout=30)
        summary = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={
                "tenantId": "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11",
                "periodStart": "2026-11",
                "periodEnd": "2026-11",
            },
            timeout=30,
        )
        status = requests.get(
            f"{api}/v1/writer/status",
            params={"tenantId": "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11"},
            timeout=30,
        )
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["status"] == "unhealthy"
    assert summary.status_code == 503
    assert summary.json()["error"]["code"] == "database_unavailable"
    assert status.status_code == 503


def test_usage_only_stripe_has_is_drift_for_the_mapped_item(emulator_url: str, db_url: str) -> None:
    world = build_world(emulator_url, db_url, customers=1, with_item_id=True)
    customer = world.customers[0]
    world.client.v1.billing.meter_events.create(
        {
            "event_name": world.event_name,
            "identifier": "never-sent-by-us",
            "timestamp": world.frozen_time() - 600,
            "payload": {"stripe_customer_id": customer, "value": "7"},
        }
    )
    with running_api(settings_for(emulator_url, db_url), db_url) as api:
        (report,) = run(api, str(world.tenant_id))
    assert report["customerRef"] == customer
    assert report["subscriptionItemId"] == world.items[customer]
    assert (report["local"], report["stripe"], report["drift_abs"]) == ("0", "7", "7")
    assert (report["drift_pct"], report["status"]) == ("1", "investigate")


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        # UTC conversion of these overflows; they must be refused before any arithmetic.
        (
            {"from": "9999-12-31T23:00:00-05:00", "to": "9999-12-31T23:30:00-05:00"},
            "from",
            "out_of_range",
        ),
        ({"from": "2026-11-01T00:00:00Z", "to": "9999-12-31T23:00:00-05:00"}, "to", "out_of_range"),
        (
            {"from": "0001-01-01T00:00:00+01:00", "to": "2026-11-01T00:00:00Z"},
            "from",
            "out_of_range",
        ),
        (
            {"from": "1970-01-01T00:30:00+01:00", "to": "2026-11-01T00:00:00Z"},
            "from",
            "out_of_range",
        ),
        ({"from": "2026-11-01T00:00:00Z", "to": "9999-01-01T00:00:01Z"}, "to", "out_of_range"),
        ({"periodStart": "9999-12", "periodEnd": "9999-12"}, "periodStart", "invalid_month"),
        ({"periodStart": "2026-11", "periodEnd": "9999-01"}, "periodEnd", "out_of_range"),
        ({"periodStart": "0001-01", "periodEnd": "2026-11"}, "periodStart", "out_of_range"),
    ],
)
def test_summary_windows_outside_the_supported_range_are_400_naming_the_parameter(
    db_url: str, params: dict[str, str], field: str, code: str
) -> None:
    settings = settings_for("http://127.0.0.1:9", db_url)
    with running_api(settings, db_url) as api:
        answer = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={"tenantId": "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11", **params},
            timeout=10,
        )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    allowed = (
        "1970-01..9998-12"
        if field.startswith("period")
        else ("1970-01-01T00:00:00Z..9999-01-01T00:00:00Z")
    )
    assert allowed in error["message"]


def test_summary_window_at_the_range_edges_is_accepted(db_url: str) -> None:
    settings = settings_for("http://127.0.0.1:9", db_url)
    with running_api(settings, db_url) as api:
        answer = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={
                "tenantId": "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11",
                "from": "1970-01-01T01:00:00+01:00",
                "to": "9998-12-31T19:00:00-05:00",
            },
            timeout=10,
        )
    assert answer.status_code == 404, answer.text  # a valid window with no reports
    assert answer.json()["error"]["code"] == "no_reports"


def test_a_subscription_canceled_at_period_end_has_its_final_invoice_reconciled(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=2, clock_start_ago_s=30 * HOUR)
    leaving, staying = world.customers
    settings = settings_for(emulator_url, db_url)
    tenant = str(world.tenant_id)
    frozen = world.frozen_time()
    period = iso(world.period_start)
    events = [
        usage_event(world, customer, frozen - h * HOUR, 4 + h, f"{customer}-{h}")
        for customer in world.customers
        for h in range(1, 6)
    ]
    local = sum(Decimal(e["quantity"]) for e in events if e["customerRef"] == leaving)
    subscription = world.client.v1.subscription_items.retrieve(world.items[leaving]).subscription
    world.client.v1.subscriptions.update(subscription, {"cancel_at_period_end": True})

    with running_api(settings, db_url) as api:
        ingest(api, events)
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
        world.advance(world.period_end + 2 * HOUR)
        assert world.client.v1.subscriptions.retrieve(subscription).status == "canceled"
        closed = by_customer(run(api, tenant), period)
        final = closed[leaving]
        assert (final["status"], final["final"], final["drift_abs"]) == ("ok", True, "0")
        assert final["invoiceQuantity"] == final["local"] == str(local)
        invoice = world.client.v1.invoices.retrieve(final["invoiceId"])
        assert invoice.parent.subscription_details.subscription == subscription
        # The canceled subscription has no open period after its last one.
        after = by_customer(run(api, tenant), iso(world.period_end))
        assert leaving not in after and after[staying]["status"] == "ok"
