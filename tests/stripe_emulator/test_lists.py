"""List envelopes, pagination and expand[] (facts §1.8, §1.9)."""

from __future__ import annotations

import pytest
import requests
import stripe

from tests.support.emulator import TEST_KEY


def test_auto_paging_over_250_objects_yields_each_once(client: stripe.StripeClient) -> None:
    made = [client.v1.products.create({"name": f"p{i}"}).id for i in range(250)]
    seen = [p.id for p in client.v1.products.list({"limit": 100}).auto_paging_iter()]
    assert len(seen) == 250
    assert set(seen) == set(made)
    assert seen == list(reversed(made))  # newest first


def test_list_envelope_default_limit_and_relative_url(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    for i in range(12):
        requests.post(f"{base_url}/v1/products", data={"name": f"p{i}"}, headers=headers, timeout=5)
    body = requests.get(f"{base_url}/v1/products", headers=headers, timeout=5).json()
    assert body["object"] == "list"
    assert body["url"] == "/v1/products"
    assert body["has_more"] is True
    assert len(body["data"]) == 10
    assert body["data"][0]["name"] == "p11"


def test_starting_after_and_ending_before(client: stripe.StripeClient) -> None:
    ids = [client.v1.products.create({"name": str(i)}).id for i in range(5)]
    newest_first = list(reversed(ids))
    page = client.v1.products.list({"limit": 2, "starting_after": newest_first[1]})
    assert [p.id for p in page.data] == newest_first[2:4]
    assert page.has_more is True
    back = client.v1.products.list({"limit": 2, "ending_before": newest_first[3]})
    assert [p.id for p in back.data] == newest_first[1:3]
    assert back.has_more is True


@pytest.mark.parametrize("limit", [0, 101])
def test_limit_out_of_range_is_refused(client: stripe.StripeClient, limit: int) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.list({"limit": limit})
    assert (err.value.code, err.value.param) == ("parameter_invalid_integer", "limit")


def test_unknown_cursor_is_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.list({"starting_after": "prod_nope"})
    assert (err.value.code, err.value.param) == ("resource_missing", "starting_after")


def test_expand_customer_and_default_payment_method(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({"email": "x@example.com"})
    pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
    got = client.v1.customers.retrieve(
        cus.id, {"expand": ["invoice_settings.default_payment_method"]}
    )
    assert got.invoice_settings.default_payment_method.id == pm.id
    assert got.invoice_settings.default_payment_method.card.last4 == "4242"
    listed = client.v1.payment_methods.list({"customer": cus.id, "expand": ["data.customer"]})
    assert listed.data[0].customer.email == "x@example.com"


def test_expand_unknown_property_is_refused(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve(cus.id, {"expand": ["nothing_here"]})
    assert err.value.param == "expand"


def test_bad_expand_on_create_is_refused_before_anything_is_created(
    client: stripe.StripeClient, base_url: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"email": "x@example.com", "expand": ["custmer"]})
    assert err.value.param == "expand"
    assert requests.get(f"{base_url}/_emulator/state", timeout=5).json()["customers"] == []
