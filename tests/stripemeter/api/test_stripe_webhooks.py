"""`POST /v1/stripe/webhooks` and `GET /v1/stripe/meter_errors` over real HTTP on a real
PostgreSQL, with events signed by hand (Stripe's scheme, tests/stripemeter/webhooks/
signing.py): what is refused and how, what each type records, and that an event id is
recorded and worked once however often it arrives."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import requests

from tests.stripemeter.conftest import Api, start_api
from tests.stripemeter.webhooks.signing import signature, signed_post

SECRET = "whsec_test_hand_signed_0123456789"


@pytest.fixture
def hooks(db_url: str) -> Iterator[Api]:
    with start_api(db_url, STRIPE_WEBHOOK_SECRET=SECRET) as served:
        yield served


def bind(api: Api, customer_ref: str, stripe_customer: str) -> None:
    with psycopg.connect(api.db_url) as conn:
        conn.execute(
            "INSERT INTO customer_bindings (tenant_id, customer_ref, stripe_customer_id)"
            " VALUES (%s, %s, %s)",
            (api.tenant, customer_ref, stripe_customer),
        )


def invoice_event(
    kind: str, customer: str, *, status: str = "draft", **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": kind,
        "created": 1796112000,
        "livemode": False,
        "data": {
            "object": {
                "id": "in_test_1",
                "object": "invoice",
                "customer": customer,
                "status": status,
                "period_start": 1793520000,
                "period_end": 1796112000,
                "parent": {"subscription_details": {"subscription": "sub_1"}},
                **extra,
            }
        },
    }


def meter_error_event(event_id: str) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "v2.core.event",
        "type": "v1.billing.meter.error_report_triggered",
        "created": "2026-11-20T10:15:00.000Z",
        "related_object": {
            "id": "mtr_123",
            "type": "billing.meter",
            "url": "/v1/billing/meters/mtr_123",
        },
        "data": {
            "developer_message_summary": "2 meter events could not be processed",
            "validation_start": "2026-11-20T10:00:00.000Z",
            "validation_end": "2026-11-20T10:15:00.000Z",
            "reason": {
                "error_count": 3,
                "error_types": [
                    {
                        "code": "meter_event_customer_not_found",
                        "error_count": 2,
                        "sample_errors": [
                            {
                                "error_message": "No customer cus_gone",
                                "request": {"identifier": "a"},
                            }
                        ],
                    },
                    {"code": "meter_event_invalid_value", "error_count": 1, "sample_errors": []},
                ],
            },
        },
    }


def row(api: Api, event_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(api.db_url) as conn:
        return conn.execute(
            "SELECT type, action, status, tenant_id::text, customer_ref, invoice_id, note"
            " FROM stripe_webhook_events WHERE event_id = %s",
            (event_id,),
        ).fetchone()


def test_without_a_secret_the_route_says_webhooks_are_not_configured(api: Api) -> None:
    answer = signed_post(api.base, SECRET, invoice_event("invoice.created", "cus_1"))
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "webhooks_not_configured"
    assert "STRIPE_WEBHOOK_SECRET" in error["message"]
    assert api.scalar("SELECT count(*) FROM stripe_webhook_events") == 0


def test_bad_signatures_are_400_with_stripes_message_and_record_nothing(hooks: Api) -> None:
    event = invoice_event("invoice.created", "cus_1")
    body = json.dumps(event).encode()
    url = hooks.url("/v1/stripe/webhooks")
    cases = {
        "missing": {},
        "wrong secret": {"Stripe-Signature": signature("whsec_other", body)},
        "malformed": {"Stripe-Signature": "garbage"},
        "stale": {"Stripe-Signature": signature(SECRET, body, int(time.time()) - 301)},
    }
    for name, headers in cases.items():
        answer = requests.post(url, data=body, headers=headers, timeout=30)
        assert answer.status_code == 400, (name, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == (
            "signature_verification_failed",
            "Stripe-Signature",
        ), name
    tampered = requests.post(
        url,
        data=body.replace(b"cus_1", b"cus_2"),
        headers={"Stripe-Signature": signature(SECRET, body)},
        timeout=30,
    )
    assert tampered.status_code == 400
    assert (
        "No signatures found matching the expected signature" in tampered.json()["error"]["message"]
    )
    assert hooks.scalar("SELECT count(*) FROM stripe_webhook_events") == 0


def test_a_signed_body_that_is_not_an_event_is_400_invalid_event(hooks: Api) -> None:
    url = hooks.url("/v1/stripe/webhooks")
    for body in (b"not json", b"[1, 2]", b'{"type": "invoice.created"}'):
        answer = requests.post(
            url, data=body, headers={"Stripe-Signature": signature(SECRET, body)}, timeout=30
        )
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_event"
    too_long = signed_post(hooks.base, SECRET, {"id": "evt_" + "x" * 300, "type": "a.b"})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["message"] == "the event's 'id' is over 255 characters"
    no_customer = invoice_event("invoice.created", "cus_1")
    del no_customer["data"]["object"]["customer"]
    answer = signed_post(hooks.base, SECRET, no_customer)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "invoice.created without the invoice's `customer`"


def test_draft_invoice_created_queues_a_flush_once_and_a_replay_does_nothing(hooks: Api) -> None:
    bind(hooks, "acme", "cus_acme")
    event = invoice_event("invoice.created", "cus_acme")
    first = signed_post(hooks.base, SECRET, event)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": True,
        "eventId": event["id"],
        "type": "invoice.created",
        "action": "flush",
        "status": "pending",
        "duplicate": False,
        "note": None,
    }
    assert row(hooks, event["id"]) == (
        "invoice.created",
        "flush",
        "pending",
        hooks.tenant,
        "acme",
        "in_test_1",
        None,
    )
    for _ in range(3):
        again = signed_post(hooks.base, SECRET, event)
        assert again.status_code == 200
        assert (again.json()["duplicate"], again.json()["status"]) == (True, "pending")
    assert hooks.scalar("SELECT count(*) FROM stripe_webhook_events") == 1


def test_finalized_invoice_queues_a_reconciliation_for_the_bound_tenant(hooks: Api) -> None:
    bind(hooks, "acme", "cus_acme")
    event = invoice_event("invoice.finalized", "cus_acme", status="open")
    answer = signed_post(hooks.base, SECRET, event)
    assert (answer.status_code, answer.json()["action"]) == (200, "reconcile")
    assert row(hooks, event["id"])[:4] == (
        "invoice.finalized",
        "reconcile",
        "pending",
        hooks.tenant,
    )  # type: ignore[index]


def test_events_with_nothing_to_do_are_200_and_recorded_as_ignored_with_why(hooks: Api) -> None:
    bind(hooks, "acme", "cus_acme")
    cases = {
        "no tenant is bound to Stripe customer cus_nobody": invoice_event(
            "invoice.created", "cus_nobody"
        ),
        "invoice status is open, not draft": invoice_event(
            "invoice.created", "cus_acme", status="open"
        ),
        "not a subscription invoice": invoice_event("invoice.created", "cus_acme", parent=None),
        "event type customer.updated is not handled": {
            "id": "evt_unknown_1",
            "type": "customer.updated",
            "data": {"object": {"id": "cus_acme"}},
        },
    }
    for note, event in cases.items():
        answer = signed_post(hooks.base, SECRET, event)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["action"], body["status"], body["note"]) == ("none", "ignored", note)
        assert row(hooks, event["id"])[1:3] == ("none", "ignored")  # type: ignore[index]
    assert hooks.scalar("SELECT count(*) FROM stripe_webhook_events WHERE status = 'pending'") == 0


def map_meter(api: Api, tenant: str, meter_id: str) -> None:
    with psycopg.connect(api.db_url) as conn:
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id, meter_id)"
            " VALUES (%s, 'api_calls', 'sum', 'price_x', %s)",
            (tenant, meter_id),
        )


def test_meter_error_report_is_stored_once_listed_for_its_tenant_and_counted(
    hooks: Api,
) -> None:
    map_meter(hooks, hooks.tenant, "mtr_123")
    other = str(uuid.uuid4())
    map_meter(hooks, other, "mtr_other")
    signed_post(
        hooks.base,
        SECRET,
        {**meter_error_event("evt_other"), "related_object": {"id": "mtr_other"}},
    )
    event = meter_error_event("evt_meter_errors_1")
    for duplicate in (False, True):
        answer = signed_post(hooks.base, SECRET, event)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["action"], body["status"], body["duplicate"]) == (
            "meter_errors",
            "done",
            duplicate,
        )
        assert body["note"] == "2 meter events could not be processed"
    listed = hooks.get("/v1/stripe/meter_errors")
    assert listed.status_code == 200, listed.text
    assert listed.json()["tenantId"] == hooks.tenant
    errors = sorted(listed.json()["errors"], key=lambda e: e["errorCode"])
    assert [
        (e["eventId"], e["meterId"], e["errorCode"], e["errorCount"], e["sampleMessage"])
        for e in errors
    ] == [
        (
            "evt_meter_errors_1",
            "mtr_123",
            "meter_event_customer_not_found",
            2,
            "No customer cus_gone",
        ),
        ("evt_meter_errors_1", "mtr_123", "meter_event_invalid_value", 1, None),
    ]
    assert errors[0]["validationStart"] == "2026-11-20T10:00:00Z"
    assert errors[0]["validationEnd"] == "2026-11-20T10:15:00Z"
    metrics = hooks.get("/metrics").text
    assert "stripemeter_stripe_meter_errors_total" in metrics
    assert (
        'stripemeter_stripe_webhook_events_total{outcome="duplicate",'
        'type="v1.billing.meter.error_report_triggered"}'
    ) in metrics
    assert requests.get(hooks.url("/v1/stripe/meter_errors"), timeout=30).status_code == 401
    assert hooks.get("/v1/stripe/meter_errors", params={"limit": 0}).status_code == 400
    refused = hooks.get("/v1/stripe/meter_errors", params={"tenantId": other})
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden_tenant")
    assert (
        hooks.scalar("SELECT count(*) FROM meter_error_reports WHERE meter_id = 'mtr_other'") == 2
    )


def test_meter_error_report_without_error_types_is_refused_whole(hooks: Api) -> None:
    event = meter_error_event("evt_meter_errors_bad")
    event["data"]["reason"] = {"error_count": 1}
    answer = signed_post(hooks.base, SECRET, event)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_event"
    assert hooks.scalar("SELECT count(*) FROM stripe_webhook_events") == 0
