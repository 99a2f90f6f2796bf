"""Products and prices: basil rules for metered prices (facts §3.7, §7 #3-4)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests
import stripe

from tests.stripe_emulator.sdk_schema import check
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


def _json(obj: Any) -> dict[str, Any]:
    """The JSON body the emulator sent for `obj` (not the SDK's decoded copy)."""
    data: dict[str, Any] = obj.last_response.data
    return data


def _sdk_fields(cls: type) -> set[str]:
    return {k for k in cls.__annotations__ if k != "OBJECT_NAME"}


def test_product_shape_matches_the_sdk_schema(client: stripe.StripeClient) -> None:
    plain = client.v1.products.create({"name": "Plain"})
    body = _json(plain)
    assert set(body) == _sdk_fields(stripe.Product) - {"deleted"}
    assert (body["tax_details"], body["package_dimensions"], body["shippable"], body["url"]) == (
        None,
        None,
        None,
        None,
    )
    assert (body["images"], body["marketing_features"], body["type"]) == ([], [], "service")
    full = client.v1.products.create(
        {
            "name": "Full",
            "tax_details": {"tax_code": "txcd_1"},
            "package_dimensions": {"height": 1, "length": 2, "weight": 3, "width": 4},
            "marketing_features": [{"name": "Fast"}],
            "default_price_data": {"currency": "usd", "unit_amount": 5},
        }
    )
    responses = [
        body,
        _json(full),
        _json(client.v1.products.retrieve(full.id, {"expand": ["default_price"]})),
        _json(client.v1.products.update(full.id, {"url": "https://x"})),
    ]
    for got in responses + _json(client.v1.products.list())["data"]:
        assert check(got, stripe.Product) == []
    gone = client.v1.products.delete(plain.id)
    assert _json(gone) == {"id": plain.id, "object": "product", "deleted": True}
    assert check(_json(gone), stripe.Product) == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.retrieve(plain.id)
    assert err.value.code == "resource_missing"


def test_product_with_prices_cannot_be_deleted(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "P"})
    client.v1.prices.create({"currency": "usd", "product": product.id, "unit_amount": 1})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.delete(product.id)
    assert err.value.http_status == 400
    assert client.v1.products.retrieve(product.id).id == product.id


def test_price_shape_matches_the_sdk_schema(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "P"})
    flat = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 5,
            "recurring": {"interval": "month"},
            "transform_quantity": {"divide_by": 10, "round": "up"},
        }
    )
    body = _json(flat)
    # tiers and currency_options are includable: absent unless expanded
    assert set(body) == _sdk_fields(stripe.Price) - {"deleted", "tiers", "currency_options"}
    assert (body["custom_unit_amount"], body["tiers_mode"]) == (None, None)
    assert body["transform_quantity"] == {"divide_by": 10, "round": "up"}
    assert body["recurring"] == {
        "interval": "month",
        "interval_count": 1,
        "meter": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }
    tiered = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "billing_scheme": "tiered",
            "tiers_mode": "graduated",
            "tiers": [{"up_to": 10, "unit_amount": 3}, {"up_to": "inf", "flat_amount": 100}],
        }
    )
    assert "tiers" not in _json(tiered)
    expanded = client.v1.prices.retrieve(tiered.id, {"expand": ["tiers"]})
    tiers = [
        {
            "flat_amount": None,
            "flat_amount_decimal": None,
            "unit_amount": 3,
            "unit_amount_decimal": "3",
            "up_to": 10,
        },
        {
            "flat_amount": 100,
            "flat_amount_decimal": "100",
            "unit_amount": None,
            "unit_amount_decimal": None,
            "up_to": None,
        },
    ]
    assert _json(expanded)["tiers"] == tiers
    listed = _json(client.v1.prices.list({"product": product.id, "expand": ["data.tiers"]}))
    assert [p.get("tiers") for p in listed["data"]] == [tiers, None]
    assert "tiers" in listed["data"][1] and listed["data"][1]["tiers"] is None
    plain_list = _json(client.v1.prices.list({"product": product.id}))
    assert all("tiers" not in p for p in plain_list["data"])
    for got in [body, _json(tiered), _json(expanded), *listed["data"], *plain_list["data"]]:
        assert check(got, stripe.Price) == []
