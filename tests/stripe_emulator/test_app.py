"""Wire behaviour: auth, Request-Id, error shapes, unknown/missing params, unknown routes."""

from __future__ import annotations

import pytest
import requests
import stripe

from tests.support.emulator import TEST_KEY, sdk_client

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def test_health_needs_no_auth_and_has_request_id(base_url: str) -> None:
    resp = requests.get(f"{base_url}/_emulator/health", timeout=5)
    assert resp.status_code == 200
    assert resp.json() == {"status": "ok"}
    assert resp.headers["Request-Id"].startswith("req_")


@pytest.mark.parametrize("key", ["sk_live_abcdef123456", "rk_live_abc", "pk_test_123", "nope"])
def test_other_keys_including_live_are_refused_401(base_url: str, key: str) -> None:
    with pytest.raises(stripe.AuthenticationError) as err:
        sdk_client(base_url, api_key=key).v1.customers.list()
    assert err.value.http_status == 401
    assert err.value.request_id is not None and err.value.request_id.startswith("req_")
    assert err.value.json_body["error"]["type"] == "invalid_request_error"


def test_missing_key_is_401_in_stripe_shape(base_url: str) -> None:
    resp = requests.get(f"{base_url}/v1/customers", timeout=5)
    assert resp.status_code == 401
    assert resp.json()["error"]["message"].startswith("You did not provide an API key")
    assert resp.headers["Request-Id"].startswith("req_")


def test_basic_auth_with_key_as_user_is_accepted(base_url: str) -> None:
    resp = requests.post(
        f"{base_url}/v1/customers", data={"email": "a@example.com"}, auth=(TEST_KEY, ""), timeout=5
    )
    assert resp.status_code == 200
    assert resp.json()["email"] == "a@example.com"


def test_basic_auth_with_live_key_is_refused(base_url: str) -> None:
    resp = requests.get(f"{base_url}/v1/customers", auth=("sk_live_123456789", ""), timeout=5)
    assert resp.status_code == 401


def test_every_answer_carries_request_id_and_sdk_sees_it(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({"email": "x@example.com"})
    assert cus.last_response is not None
    assert cus.last_response.request_id.startswith("req_")


def test_unknown_parameter_is_named(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"emali": "x@example.com"})  # type: ignore[typeddict-unknown-key]
    assert (err.value.http_status, err.value.code, err.value.param) == (
        400,
        "parameter_unknown",
        "emali",
    )
    assert "Received unknown parameter: emali" in str(err.value.user_message)


def test_unknown_nested_parameter_is_named_with_brackets(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"invoice_settings": {"colour": "red"}})  # type: ignore[typeddict-unknown-key]
    assert (err.value.code, err.value.param) == ("parameter_unknown", "invoice_settings[colour]")


def test_missing_parameter_is_named(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.create(
            {"display_name": "x", "default_aggregation": {"formula": "sum"}}  # type: ignore[typeddict-item]
        )
    assert (err.value.code, err.value.param) == ("parameter_missing", "event_name")


def test_unknown_id_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve("cus_doesnotexist")
    assert err.value.http_status == 404
    assert err.value.code == "resource_missing"
    assert "No such customer: 'cus_doesnotexist'" in str(err.value.user_message)


def test_unimplemented_route_says_so(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.charges.list()
    assert err.value.http_status == 404
    assert "does not implement" in str(err.value.user_message)
    assert "GET: /v1/charges" in str(err.value.user_message)


def test_non_integer_is_refused(base_url: str) -> None:
    resp = requests.get(f"{base_url}/v1/customers?limit=ten", headers=AUTH, timeout=5)
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "parameter_invalid_integer"
    assert resp.json()["error"]["param"] == "limit"


def test_stripe_version_header_is_accepted_and_echoed(base_url: str) -> None:
    headers = {**AUTH, "Stripe-Version": "2026-10-28.endive"}
    resp = requests.get(f"{base_url}/v1/customers", headers=headers, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Stripe-Version"] == "2026-10-28.endive"


def test_empty_bracket_array_form_works_over_http(base_url: str) -> None:
    cus = requests.post(
        f"{base_url}/v1/customers", data={"email": "e@example.com"}, headers=AUTH, timeout=5
    ).json()
    clock = requests.post(
        f"{base_url}/v1/test_helpers/test_clocks",
        data="frozen_time=1700000000&expand[]=",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert clock.status_code == 200
    made = requests.post(
        f"{base_url}/v1/customers",
        data=f"test_clock={clock.json()['id']}&expand[]=test_clock&metadata[k]=v",
        headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    ).json()
    assert made["test_clock"]["object"] == "test_helpers.test_clock"
    assert made["metadata"] == {"k": "v"}
    resp = requests.get(
        f"{base_url}/v1/customers/{cus['id']}?expand[]=test_clock", headers=AUTH, timeout=5
    )
    assert resp.status_code == 200
    assert resp.json()["test_clock"] is None


def test_v2_meter_events_are_reported_as_not_implemented(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.StripeError) as err:
        client.v2.billing.meter_events.create(
            {"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_x", "value": "1"}}
        )
    assert err.value.http_status == 404
    assert "does not implement" in str(err.value.http_body)


def test_unknown_stripe_version_is_refused_like_stripe(base_url: str) -> None:
    for version, status in (("bogus", 400), ("2099-01-01.zebra", 400), ("2026-10-28.endive", 200)):
        resp = requests.get(
            f"{base_url}/v1/customers",
            headers={"Authorization": f"Bearer {TEST_KEY}", "Stripe-Version": version},
            timeout=5,
        )
        assert resp.status_code == status, version
        if status == 400:
            error = resp.json()["error"]
            assert error["message"] == f"Invalid Stripe API version: {version}"
            assert error["type"] == "invalid_request_error"
