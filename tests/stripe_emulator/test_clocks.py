"""Test clocks (facts §2): create refusals, forward-only capped advance, async, cascade."""

from __future__ import annotations

import time

import pytest
import requests
import stripe

from tests.stripe_emulator.helpers import advance, metered_price, wait_ready
from tests.support.emulator import TEST_KEY

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_seed_clock_with_status_and_present_is_refused(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    resp = requests.post(
        f"{base_url}/v1/test_helpers/test_clocks",
        data={"frozen_time": T0, "name": "seed", "status": "advancing", "present": "true"},
        headers=headers,
        timeout=5,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "parameter_unknown"
    assert resp.json()["error"]["param"] in ("status", "present")


@pytest.mark.parametrize("param", ["status", "present"])
def test_status_and_present_are_unknown_parameters(client: stripe.StripeClient, param: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.create(
            {"frozen_time": T0, param: "true"}  # type: ignore[misc]
        )
    assert (err.value.code, err.value.param) == ("parameter_unknown", param)


def test_create_retrieve_list_fields(client: stripe.StripeClient) -> None:
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0, "name": "c1"})
    assert clock.id.startswith("clock_")
    assert (clock.object, clock.status, clock.frozen_time, clock.name) == (
        "test_helpers.test_clock",
        "ready",
        T0,
        "c1",
    )
    assert clock.deletes_after == clock.created + 7 * 86400
    assert client.v1.test_helpers.test_clocks.retrieve(clock.id).id == clock.id
    assert [c.id for c in client.v1.test_helpers.test_clocks.list().data] == [clock.id]


def test_frozen_time_is_required(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.create({"name": "x"})  # type: ignore[typeddict-item]
    assert (err.value.code, err.value.param) == ("parameter_missing", "frozen_time")


def test_advance_is_async_then_ready(base_url: str) -> None:
    from tests.support.emulator import sdk_client

    client = sdk_client(base_url)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    # The session emulator settles after 20 ms; check the advancing state right away.
    moved = client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": T0 + 3600})
    assert moved.status == "advancing"
    assert moved.status_details.advancing.target_frozen_time == T0 + 3600
    assert moved.frozen_time == T0
    ready = wait_ready(client, clock.id)
    assert (ready.status, ready.frozen_time) == ("ready", T0 + 3600)


def test_advancing_clock_refuses_another_advance(client: stripe.StripeClient) -> None:
    from stripe_emulator.app import create_app
    from tests.support.emulator import sdk_client
    from tests.support.servers import serve_asgi

    with serve_asgi(create_app(advance_delay_s=30)) as url:
        slow = sdk_client(url)
        clock = slow.v1.test_helpers.test_clocks.create({"frozen_time": T0})
        slow.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": T0 + 60})
        with pytest.raises(stripe.InvalidRequestError) as err:
            slow.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": T0 + 120})
        assert err.value.code == "status_transition_invalid"
        assert slow.v1.test_helpers.test_clocks.retrieve(clock.id).status == "advancing"


def test_advance_backwards_is_refused(client: stripe.StripeClient) -> None:
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": T0})
    assert (err.value.code, err.value.param) == ("parameter_invalid_integer", "frozen_time")


def test_advance_cap_is_two_years_without_subscriptions(client: stripe.StripeClient) -> None:
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    two_years = 1_830_297_600  # 2028-01-01
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": two_years + 1})
    assert (err.value.code, err.value.param) == ("parameter_invalid_integer", "frozen_time")
    assert advance(client, clock.id, two_years).frozen_time == two_years


def test_advance_cap_is_two_intervals_of_shortest_subscription(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, weekly = metered_price(client, interval="week")
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": now - 3600})
    cus = client.v1.customers.create({"test_clock": clock.id})
    client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": weekly.id}]})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.advance(
            clock.id, {"frozen_time": now - 3600 + 14 * 86400 + 1}
        )
    assert err.value.param == "frozen_time"
    assert "two intervals" in str(err.value.user_message)
    assert advance(client, clock.id, now - 3600 + 14 * 86400).status == "ready"


def test_at_most_three_customers_per_clock(client: stripe.StripeClient) -> None:
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    for _ in range(3):
        client.v1.customers.create({"test_clock": clock.id})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"test_clock": clock.id})
    assert (err.value.code, err.value.param) == ("test_clock_customer_limit", "test_clock")


def test_delete_cascades_to_customers_subscriptions_invoices(
    client: stripe.StripeClient, base_url: str
) -> None:
    now = int(time.time())
    _, price = metered_price(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": now - 60})
    cus = client.v1.customers.create({"test_clock": clock.id})
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    deleted = client.v1.test_helpers.test_clocks.delete(clock.id)
    assert (deleted.id, deleted.deleted) == (clock.id, True)
    for call, obj_id in [
        (client.v1.customers.retrieve, cus.id),
        (client.v1.subscriptions.retrieve, sub.id),
        (client.v1.invoices.retrieve, sub.latest_invoice),
        (client.v1.test_helpers.test_clocks.retrieve, clock.id),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as err:
            call(obj_id)
        assert err.value.code == "resource_missing"
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    assert state["subscription_items"] == [] and state["invoices"] == []
    assert len(state["meters"]) == 1  # meters are account-level


def test_create_with_customer_attaches_it(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({"email": "late@example.com"})
    clock = client.v1.test_helpers.test_clocks.create(
        {"frozen_time": T0, "customer": cus.id}  # type: ignore[typeddict-unknown-key]
    )
    assert client.v1.customers.retrieve(cus.id).test_clock == clock.id
    assert client.v1.customers.list().data == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.test_helpers.test_clocks.create(
            {"frozen_time": T0, "customer": cus.id}  # type: ignore[typeddict-unknown-key]
        )
    assert err.value.param == "customer"
