"""Control endpoints (/_emulator/*) and time-window rules checked on a served instance."""

from __future__ import annotations

import time

import pytest
import requests
import stripe

from stripe_emulator.app import create_app
from tests.stripe_emulator.helpers import metered_price, send_event
from tests.support.emulator import sdk_client
from tests.support.servers import serve_asgi


def test_state_is_keyed_by_plural_type(client: stripe.StripeClient, base_url: str) -> None:
    meter, price = metered_price(client)
    cus = client.v1.customers.create({"email": "s@example.com"})
    client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    send_event(client, cus.id, int(time.time()) - 30, 3, "st-1")
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    for key in (
        "customers", "meter_events", "invoices", "test_clocks", "meters",
        "subscriptions", "prices", "products", "payment_methods", "subscription_items",
    ):  # fmt: skip
        assert key in state
    assert [c["id"] for c in state["customers"]] == [cus.id]
    assert [m["id"] for m in state["meters"]] == [meter.id]
    event = state["meter_events"][0]
    assert (event["identifier"], event["customer"], event["meter"], event["cancelled"]) == (
        "st-1",
        cus.id,
        meter.id,
        False,
    )
    assert not any(k.startswith("_") for k in state["subscriptions"][0])


def test_reset_forgets_everything(client: stripe.StripeClient, base_url: str) -> None:
    client.v1.customers.create({})
    requests.post(f"{base_url}/_emulator/reset", timeout=5).raise_for_status()
    assert requests.get(f"{base_url}/_emulator/state", timeout=5).json()["customers"] == []


def test_unknown_control_path_is_404_in_stripe_shape(base_url: str) -> None:
    resp = requests.get(f"{base_url}/_emulator/nothing", timeout=5)
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_identifier_reusable_and_cancel_refused_after_24_hours() -> None:
    app = create_app(advance_delay_s=0.01)
    with serve_asgi(app) as url:
        client = sdk_client(url)
        metered_price(client)
        cus = client.v1.customers.create({})
        now = int(time.time())
        send_event(client, cus.id, now - 60, 1, "day-old")
        for event in app.store.by_type["meter_events"].values():
            event["created"] -= 86400  # received a day ago
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.billing.meter_event_adjustments.create(
                {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "day-old"}}
            )
        assert err.value.param == "cancel[identifier]"
        again = send_event(client, cus.id, now - 30, 2, "day-old")
        assert again.identifier == "day-old"


def test_webhook_settings_show_change_and_refuse_bad_values(base_url: str) -> None:
    url = f"{base_url}/_emulator/webhook_settings"
    defaults = {"retry_base_s": 1.0, "retry_max_s": 60.0, "max_attempts": 8, "timeout_s": 10.0}
    assert requests.get(url, timeout=5).json() == defaults
    try:
        changed = requests.post(url, json={"max_attempts": 2, "timeout_s": 0.5}, timeout=5)
        assert changed.json() == {**defaults, "max_attempts": 2, "timeout_s": 0.5}
        for bad, param in (
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_attempts": 1.5}, "max_attempts"),
            ({"retry_base_s": -1}, "retry_base_s"),
            ({"timeout_s": "fast"}, "timeout_s"),
            ({"retry_base_s": True}, "retry_base_s"),
            ({"jitter": 1}, "jitter"),
        ):
            resp = requests.post(url, json=bad, timeout=5)
            assert (resp.status_code, resp.json()["error"]["param"]) == (400, param)
        for body in (b"[1]", b"{nope"):
            resp = requests.post(url, data=body, timeout=5)
            assert (resp.status_code, resp.json()["error"]["param"]) == (400, "body")
        assert requests.get(url, timeout=5).json()["max_attempts"] == 2  # nothing half-applied
    finally:
        requests.post(url, json=defaults, timeout=5).raise_for_status()


def test_webhook_endpoint_shortcut_takes_json_or_form_and_validates_like_v1(
    base_url: str, client: stripe.StripeClient
) -> None:
    url = f"{base_url}/_emulator/webhook_endpoints"
    form = requests.post(
        url,
        data={
            "url": "http://127.0.0.1:9/a",
            "enabled_events[]": ["invoice.paid", "invoice.created"],
        },
        timeout=5,
    )
    assert form.status_code == 200
    assert form.json()["enabled_events"] == ["invoice.paid", "invoice.created"]
    assert form.json()["secret"].startswith("whsec_")
    listed = client.v1.webhook_endpoints.list().data
    assert [w.id for w in listed] == [form.json()["id"]] and "secret" not in listed[0]
    for body, param, code in (
        ({"url": "http://127.0.0.1:9/a"}, "enabled_events", "parameter_missing"),
        ({"url": "x", "enabled_events": ["*"]}, "url", "url_invalid"),
        ({"url": "http://127.0.0.1:9/a", "enabled_events": ["*"], "connect": True}, "connect",
         "emulator_unsupported"),
    ):  # fmt: skip
        resp = requests.post(url, json=body, timeout=5)
        assert resp.status_code == 400
        assert (resp.json()["error"]["param"], resp.json()["error"].get("code")) == (param, code)
    assert requests.post(url, data=b"[]", timeout=5).status_code == 400
    deliveries = requests.get(f"{base_url}/_emulator/webhook_deliveries", timeout=5)
    assert deliveries.json() == {"deliveries": []}
