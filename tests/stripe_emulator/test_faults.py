"""Fault injection: N failures seen by N requests; after-commit failures keep the effect."""

from __future__ import annotations

import time

import pytest
import requests
import stripe

from tests.stripe_emulator.helpers import metered_price


def _fault(base_url: str, **rule: object) -> None:
    requests.post(f"{base_url}/_emulator/faults", json=rule, timeout=5).raise_for_status()


def test_n_failures_are_seen_by_exactly_n_requests(
    client: stripe.StripeClient, base_url: str
) -> None:
    _fault(base_url, method="POST", path="/v1/customers", status=503, count=3)
    outcomes = []
    for _ in range(5):
        try:
            client.v1.customers.create({"email": "x@example.com"})
            outcomes.append("ok")
        except stripe.APIError as err:
            outcomes.append(str(err.http_status))
    assert outcomes == ["503", "503", "503", "ok", "ok"]
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    assert len(state["customers"]) == 2  # failures before commit change nothing


def test_429_maps_to_rate_limit_error(client: stripe.StripeClient, base_url: str) -> None:
    _fault(base_url, method="GET", path="/v1/customers", status=429)
    with pytest.raises(stripe.RateLimitError) as err:
        client.v1.customers.list()
    assert err.value.http_status == 429
    assert err.value.json_body["error"]["code"] == "rate_limit"
    assert client.v1.customers.list().data == []


def test_after_commit_failure_leaves_the_event_in_place(
    client: stripe.StripeClient, base_url: str
) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({"email": "m@example.com"})
    _fault(base_url, method="POST", path="/v1/billing/meter_events", status=500, after_commit=True)
    now = int(time.time())
    event = {
        "event_name": "api_calls",
        "identifier": "evt-1",
        "timestamp": now - 60,
        "payload": {"stripe_customer_id": cus.id, "value": "7"},
    }
    with pytest.raises(stripe.APIError) as err:
        client.v1.billing.meter_events.create(event)
    assert err.value.http_status == 500
    assert err.value.json_body["error"]["type"] == "api_error"
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    assert [e["identifier"] for e in state["meter_events"]] == ["evt-1"]
    # A retry with a new Idempotency-Key is refused as a duplicate identifier.
    with pytest.raises(stripe.InvalidRequestError) as dup:
        client.v1.billing.meter_events.create(event)
    assert (dup.value.code, dup.value.param) == ("resource_already_exists", "identifier")
    start = (now - 3600) // 60 * 60
    summary = client.v1.billing.meters.event_summaries.list(
        meter.id, {"customer": cus.id, "start_time": start, "end_time": start + 7200}
    )
    assert summary.data[0].aggregated_value == 7.0


def test_after_commit_retry_with_same_key_replays_the_success(
    client: stripe.StripeClient, base_url: str
) -> None:
    _fault(base_url, method="POST", path="/v1/products", status=503, after_commit=True)
    opts: stripe.RequestOptions = {"idempotency_key": "prod-key"}
    with pytest.raises(stripe.APIError):
        client.v1.products.create({"name": "p"}, opts)
    product = client.v1.products.create({"name": "p"}, opts)
    assert client.v1.products.list().data[0].id == product.id
    assert len(client.v1.products.list().data) == 1


def test_prefix_rule_matches_and_clear_removes_rules(
    client: stripe.StripeClient, base_url: str
) -> None:
    _fault(base_url, method="*", path="/v1/billing/*", status=500, count=2)
    with pytest.raises(stripe.APIError):
        client.v1.billing.meters.list()
    requests.delete(f"{base_url}/_emulator/faults", timeout=5).raise_for_status()
    assert client.v1.billing.meters.list().data == []


def test_invalid_rule_is_refused_with_the_field_named(base_url: str) -> None:
    resp = requests.post(
        f"{base_url}/_emulator/faults", json={"path": "/v1/x", "status": 404}, timeout=5
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "status"
