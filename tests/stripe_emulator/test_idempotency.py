"""Idempotency-Key semantics on POST (facts §1.5)."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import stripe

from tests.support.emulator import TEST_KEY

AUTH = {"Authorization": f"Bearer {TEST_KEY}"}


def _wait_until_fault_taken(base_url: str) -> None:
    """Block until the held request has consumed its fault rule (bounded)."""
    deadline = time.monotonic() + 5
    while requests.get(f"{base_url}/_emulator/faults", timeout=5).json()["faults"]:
        assert time.monotonic() < deadline, "the delayed request never arrived"
        time.sleep(0.005)


def _post(base_url: str, path: str, data: dict[str, str], key: str) -> requests.Response:
    return requests.post(
        f"{base_url}{path}", data=data, headers={**AUTH, "Idempotency-Key": key}, timeout=10
    )


def test_replay_returns_identical_body_and_creates_nothing(base_url: str) -> None:
    first = _post(base_url, "/v1/customers", {"email": "a@example.com"}, "key-1")
    second = _post(base_url, "/v1/customers", {"email": "a@example.com"}, "key-1")
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true"
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    assert len(state["customers"]) == 1


def test_replay_through_sdk_returns_same_object(client: stripe.StripeClient) -> None:
    opts: stripe.RequestOptions = {"idempotency_key": "sdk-key"}
    a = client.v1.customers.create({"email": "b@example.com"}, opts)
    b = client.v1.customers.create({"email": "b@example.com"}, opts)
    assert a.id == b.id
    assert a.to_dict() == b.to_dict()


def test_same_key_other_params_is_idempotency_error(client: stripe.StripeClient) -> None:
    opts: stripe.RequestOptions = {"idempotency_key": "k2"}
    client.v1.customers.create({"email": "c@example.com"}, opts)
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.customers.create({"email": "other@example.com"}, opts)
    assert err.value.http_status == 400
    assert err.value.json_body["error"]["type"] == "idempotency_error"
    assert "k2" in str(err.value.user_message)


def test_same_key_other_endpoint_is_idempotency_error(client: stripe.StripeClient) -> None:
    opts: stripe.RequestOptions = {"idempotency_key": "k3"}
    client.v1.products.create({"name": "p"}, opts)
    with pytest.raises(stripe.IdempotencyError):
        client.v1.customers.create({"name": "p"}, opts)


def test_validation_failure_is_not_stored(client: stripe.StripeClient) -> None:
    opts: stripe.RequestOptions = {"idempotency_key": "k4"}
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {"currency": "usd", "product": "prod_missing", "unit_amount": 1}, opts
        )
    assert err.value.code == "resource_missing"
    product = client.v1.products.create({"name": "p"})
    # The same key with corrected params executes: the refusal was not stored.
    price = client.v1.prices.create(
        {"currency": "usd", "product": product.id, "unit_amount": 1}, opts
    )
    assert price.product == product.id


def test_key_in_flight_is_409_idempotency_key_in_use(base_url: str) -> None:
    fault = {
        "method": "POST",
        "path": "/v1/customers",
        "status": 500,
        "count": 1,
        "after_commit": True,
        "delay_ms": 600,
    }
    requests.post(f"{base_url}/_emulator/faults", json=fault, timeout=5).raise_for_status()
    results: dict[str, requests.Response] = {}
    slow = threading.Thread(
        target=lambda: results.update(
            first=_post(base_url, "/v1/customers", {"email": "d@example.com"}, "k5")
        )
    )
    slow.start()
    _wait_until_fault_taken(base_url)
    second = _post(base_url, "/v1/customers", {"email": "d@example.com"}, "k5")
    slow.join()
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert results["first"].status_code == 500
    # After the first finished, the same key replays the committed success.
    third = _post(base_url, "/v1/customers", {"email": "d@example.com"}, "k5")
    assert third.status_code == 200
    assert third.json()["email"] == "d@example.com"


def test_in_flight_409_maps_to_sdk_api_error(client: stripe.StripeClient, base_url: str) -> None:
    fault = {
        "method": "POST",
        "path": "/v1/products",
        "status": 503,
        "after_commit": True,
        "delay_ms": 600,
    }
    requests.post(f"{base_url}/_emulator/faults", json=fault, timeout=5).raise_for_status()
    opts: stripe.RequestOptions = {"idempotency_key": "k6"}
    first: list[int | None] = []

    def held_request() -> None:
        try:
            client.v1.products.create({"name": "p"}, opts)
        except stripe.APIError as exc:
            first.append(exc.http_status)

    slow = threading.Thread(target=held_request)
    slow.start()
    _wait_until_fault_taken(base_url)
    with pytest.raises(stripe.APIError) as err:
        client.v1.products.create({"name": "p"}, opts)
    slow.join()
    assert first == [503]
    assert err.value.http_status == 409
    assert err.value.json_body["error"]["code"] == "idempotency_key_in_use"
