"""Products and prices: basil rules for metered prices (facts §3.7, §7 #3-4)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
import stripe

from tests.support.emulator import TEST_KEY


def _meter(client: stripe.StripeClient, name: str = "api_calls") -> str:
    return client.v1.billing.meters.create(
        {"display_name": "m", "event_name": name, "default_aggregation": {"formula": "sum"}}
    ).id


def test_seed_metered_price_without_meter_is_refused(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    prod = requests.post(
        f"{base_url}/v1/products", data={"name": "API"}, headers=headers, timeout=5
    )
    resp = requests.post(
        f"{base_url}/v1/prices",
        data={
            "currency": "usd",
            "product": prod.json()["id"],
            "recurring[interval]": "month",
            "recurring[usage_type]": "metered",
            "nickname": "seed",
        },
        headers=headers,
        timeout=5,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "recurring[meter]"


def test_metered_price_without_meter_via_sdk(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {
                "currency": "usd",
                "product": product.id,
                "unit_amount": 5,
                "recurring": {"interval": "month", "usage_type": "metered"},
            }
        )
    assert (err.value.code, err.value.param) == ("parameter_missing", "recurring[meter]")


def test_price_needs_unit_amount(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API"})
    meter = _meter(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {
                "currency": "usd",
                "product": product.id,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter},
            }
        )
    assert (err.value.code, err.value.param) == ("parameter_missing", "unit_amount")


def test_unknown_meter_on_price_is_resource_missing(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {
                "currency": "usd",
                "product": product.id,
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": "mtr_x"},
            }
        )
    assert (err.value.code, err.value.param) == ("resource_missing", "recurring[meter]")


def test_metered_price_fields_and_decimal_amount(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API"})
    meter = _meter(client)
    price = client.v1.prices.create(
        {
            "currency": "USD",
            "product": product.id,
            "unit_amount_decimal": "0.5",
            "nickname": "half cent",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter},
        }
    )
    assert price.id.startswith("price_")
    assert (price.currency, price.nickname, price.unit_amount, price.type) == (
        "usd",
        "half cent",
        None,
        "recurring",
    )
    assert price.unit_amount_decimal == Decimal("0.5")
    assert (price.recurring.meter, price.recurring.usage_type, price.recurring.interval_count) == (
        meter,
        "metered",
        1,
    )
    listed = client.v1.prices.list({"product": product.id})
    assert [p.id for p in listed.data] == [price.id]


def test_inactive_meter_cannot_back_a_price(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API"})
    meter = _meter(client)
    client.v1.billing.meters.deactivate(meter)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {
                "currency": "usd",
                "product": product.id,
                "unit_amount": 1,
                "recurring": {"interval": "month", "usage_type": "metered", "meter": meter},
            }
        )
    assert err.value.param == "recurring[meter]"


def test_product_create_update_and_name_required(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API", "metadata": {"k": "v"}})
    assert (product.object, product.active, product.name) == ("product", True, "API")
    assert client.v1.products.update(product.id, {"name": "API 2"}).name == "API 2"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.create({})  # type: ignore[typeddict-item]
    assert (err.value.code, err.value.param) == ("parameter_missing", "name")


def test_unit_amount_and_decimal_are_exclusive(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "API"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {"currency": "usd", "product": product.id, "unit_amount": 1, "unit_amount_decimal": "1"}
        )
    assert (err.value.code, err.value.param) == ("parameters_exclusive", "unit_amount")
