"""Customer, payment method, product and price parameters Stripe documents: each one either
behaves as Stripe does (echoed contact and catalog fields, default_price_data,
transfer_lookup_key, list filters) or is refused as `emulator_unsupported` naming it, never
`parameter_unknown`; and every parameter of the SDK's param TypedDicts is declared."""

from __future__ import annotations

import sys
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, get_args, get_origin

import pytest
import requests
import stripe
import stripe.params as sdk_params
import typing_extensions
from stripe._request_options import RequestOptions

from stripe_emulator import catalog, customers
from stripe_emulator.params import Spec
from tests.stripe_emulator.helpers import metered_price, seat_price
from tests.support.emulator import TEST_KEY

T0 = 1_767_225_600
_REQUEST_OPTIONS = set(RequestOptions.__annotations__)

# SDK params TypedDict -> the emulator's declaration for that endpoint.
ENDPOINTS: list[tuple[str, Mapping[str, Spec]]] = [
    ("CustomerCreateParams", customers.CREATE),
    ("CustomerUpdateParams", customers.UPDATE),
    ("CustomerListParams", customers.LIST),
    ("CustomerRetrieveParams", customers.RETRIEVE),
    ("CustomerDeleteParams", {}),
    ("CustomerListPaymentMethodsParams", customers.CUSTOMER_PM_LIST),
    ("PaymentMethodAttachParams", customers.ATTACH),
    ("PaymentMethodDetachParams", customers.RETRIEVE),
    ("PaymentMethodRetrieveParams", customers.RETRIEVE),
    ("PaymentMethodListParams", customers.PM_LIST),
    ("ProductCreateParams", catalog.PRODUCT_CREATE),
    ("ProductUpdateParams", catalog.PRODUCT_UPDATE),
    ("ProductListParams", catalog.PRODUCT_LIST),
    ("ProductDeleteParams", {}),
    ("PriceCreateParams", catalog.PRICE_CREATE),
    ("PriceUpdateParams", catalog.PRICE_UPDATE),
    ("PriceListParams", catalog.PRICE_LIST),
]


def _resolve(annotation: Any, module: Any) -> Any:
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(module))
    if isinstance(annotation, typing.ForwardRef):
        annotation = eval(annotation.__forward_arg__, vars(module))
    return annotation


def _shape(annotation: Any, module: Any) -> tuple[str, Any]:
    """("dict", TypedDict) / ("list", TypedDict) for nested params, else ("scalar", None)."""
    annotation = _resolve(annotation, module)
    origin = get_origin(annotation)
    if origin in (typing_extensions.NotRequired, typing_extensions.Required):
        return _shape(get_args(annotation)[0], module)
    if origin is typing.Union:
        for arg in get_args(annotation):
            kind, inner = _shape(arg, module)
            if kind != "scalar":
                return kind, inner
        return "scalar", None
    if origin is list:
        kind, inner = _shape(get_args(annotation)[0], module)
        return ("list", inner) if kind == "dict" else ("scalar", None)
    if typing_extensions.is_typeddict(annotation):
        return "dict", annotation
    return "scalar", None


def _fields(td: Any) -> dict[str, tuple[str, Any]]:
    module = sys.modules[td.__module__]
    return {
        k: _shape(v, module) for k, v in td.__annotations__.items() if k not in _REQUEST_OPTIONS
    }


def _undeclared(td: Any, specs: Mapping[str, Spec], prefix: str) -> list[str]:
    """SDK parameters (at any depth) the emulator's specs would answer parameter_unknown."""
    missing = []
    for key, (kind, inner) in _fields(td).items():
        name = f"{prefix}[{key}]" if prefix else key
        spec = specs.get(key)
        if spec is None:
            missing.append(name)
            continue
        if spec.kind == "obj" and kind == "dict":
            missing += _undeclared(inner, spec.fields, name)
        elif spec.kind == "list" and kind == "list" and spec.item and spec.item.kind == "obj":
            missing += _undeclared(inner, spec.item.fields, f"{name}[]")
    return missing


def _extra(td: Any, specs: Mapping[str, Spec], prefix: str) -> list[str]:
    """Emulator-declared parameters the SDK does not know (they would hide a typo)."""
    fields = _fields(td)
    extra = []
    for key, spec in specs.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key not in fields:
            extra.append(name)
            continue
        kind, inner = fields[key]
        if spec.kind == "obj" and kind == "dict":
            extra += _extra(inner, spec.fields, name)
        elif spec.kind == "list" and kind == "list" and spec.item and spec.item.kind == "obj":
            extra += _extra(inner, spec.item.fields, f"{name}[]")
    return extra


@pytest.mark.parametrize(("sdk_name", "specs"), ENDPOINTS, ids=[n for n, _ in ENDPOINTS])
def test_every_sdk_parameter_is_declared_and_nothing_else(
    sdk_name: str, specs: Mapping[str, Spec]
) -> None:
    td = getattr(sdk_params, sdk_name)
    assert _undeclared(td, specs, "") == []
    assert _extra(td, specs, "") == []


def _send(base_url: str, method: str, path: str, data: dict[str, str]) -> requests.Response:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    url = f"{base_url}{path}"
    if method == "GET":
        return requests.get(url, params=data, headers=headers, timeout=5)
    return requests.post(url, data=data, headers=headers, timeout=5)


def test_no_top_level_sdk_parameter_is_answered_parameter_unknown(base_url: str) -> None:
    cus = _send(base_url, "POST", "/v1/customers", {}).json()["id"]
    prod = _send(base_url, "POST", "/v1/products", {"name": "P"}).json()["id"]
    price = _send(
        base_url, "POST", "/v1/prices", {"currency": "usd", "product": prod, "unit_amount": "1"}
    ).json()["id"]
    endpoints = [
        ("POST", "/v1/customers", "CustomerCreateParams"),
        ("POST", f"/v1/customers/{cus}", "CustomerUpdateParams"),
        ("GET", "/v1/customers", "CustomerListParams"),
        ("GET", f"/v1/customers/{cus}/payment_methods", "CustomerListPaymentMethodsParams"),
        ("GET", "/v1/payment_methods", "PaymentMethodListParams"),
        ("POST", "/v1/payment_methods/pm_card_visa/attach", "PaymentMethodAttachParams"),
        ("POST", "/v1/products", "ProductCreateParams"),
        ("POST", f"/v1/products/{prod}", "ProductUpdateParams"),
        ("GET", "/v1/products", "ProductListParams"),
        ("POST", "/v1/prices", "PriceCreateParams"),
        ("POST", f"/v1/prices/{price}", "PriceUpdateParams"),
        ("GET", "/v1/prices", "PriceListParams"),
    ]
    sent = 0
    for method, path, sdk_name in endpoints:
        for key in _fields(getattr(sdk_params, sdk_name)):
            resp = _send(base_url, method, path, {key: "x"})
            error = resp.json().get("error", {})
            assert error.get("code") != "parameter_unknown", (method, path, key, error)
            sent += 1
    assert sent > 100, "the walk over the SDK TypedDicts found too few parameters"
    resp = _send(base_url, "GET", "/v1/prices", {"colour": "x"})
    assert resp.json()["error"]["code"] == "parameter_unknown"


def test_truly_unknown_parameters_are_parameter_unknown(client: stripe.StripeClient) -> None:
    cases: list[tuple[Any, dict[str, Any], str]] = [
        (client.v1.customers.create, {"favourite_colour": "red"}, "favourite_colour"),
        (client.v1.customers.create, {"address": {"planet": "Mars"}}, "address[planet]"),
        (client.v1.products.create, {"name": "P", "colour": "red"}, "colour"),
        (
            client.v1.prices.list,
            {"recurring": {"aggregate_usage": "sum"}},
            "recurring[aggregate_usage]",
        ),
        (client.v1.products.list, {"name": "P"}, "name"),
    ]
    for call, params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as err:
            call(params)
        assert (err.value.code, err.value.param) == ("parameter_unknown", param)


def _unsupported(err: pytest.ExceptionInfo[stripe.InvalidRequestError], param: str) -> None:
    assert (err.value.http_status, err.value.code, err.value.param) == (
        400,
        "emulator_unsupported",
        param,
    )
    assert "Real Stripe accepts it" in str(err.value.user_message)


ADDRESS = {
    "line1": "1 Main St",
    "line2": "Apt 2",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
    "country": "US",
}


def test_customer_contact_fields_are_echoed_and_unset(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create(
        {
            "address": ADDRESS,
            "shipping": {"name": "Dock", "phone": "+1555", "address": {"city": "Austin"}},
            "tax_exempt": "reverse",
            "preferred_locales": ["fr-FR", "en"],
            "business_name": "Acme Inc",
            "individual_name": "Ann Smith",
            "balance": 0,
            "validate": True,
        }
    )
    assert cus.address.to_dict() == ADDRESS
    assert cus.shipping.to_dict() == {
        "address": {
            "city": "Austin",
            "country": None,
            "line1": None,
            "line2": None,
            "postal_code": None,
            "state": None,
        },
        "carrier": None,
        "name": "Dock",
        "phone": "+1555",
        "tracking_number": None,
    }
    assert (cus.tax_exempt, cus.preferred_locales, cus.balance) == ("reverse", ["fr-FR", "en"], 0)
    assert (cus.business_name, cus.individual_name) == ("Acme Inc", "Ann Smith")
    got = client.v1.customers.retrieve(cus.id)
    assert got.address.to_dict() == ADDRESS and got.tax_exempt == "reverse"
    cleared = client.v1.customers.update(
        cus.id,
        {
            "address": "",
            "shipping": "",
            "tax_exempt": "",
            "preferred_locales": "",
            "business_name": "",
        },
    )
    assert (cleared.address, cleared.shipping, cleared.tax_exempt) == (None, None, "none")
    assert cleared.preferred_locales == []
    assert "business_name" not in cleared and cleared.individual_name == "Ann Smith"
    updated = client.v1.customers.update(cus.id, {"tax_exempt": "exempt", "address": {"city": "X"}})
    assert updated.tax_exempt == "exempt" and updated.address.city == "X"
    assert updated.address.line1 is None


def test_invoice_prefix_sequence_and_contact_fields_reach_the_invoice(
    client: stripe.StripeClient,
) -> None:
    seat = seat_price(client)
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    cus = client.v1.customers.create(
        {
            "test_clock": clock.id,
            "address": ADDRESS,
            "shipping": {"name": "Dock", "address": {"city": "Austin"}},
            "tax_exempt": "exempt",
            "invoice_prefix": "ACME7",
            "next_invoice_sequence": 41,
            "payment_method": "pm_card_visa",
        }
    )
    assert (cus.invoice_prefix, cus.next_invoice_sequence) == ("ACME7", 41)
    pm = client.v1.payment_methods.list({"customer": cus.id}).data[0]
    client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": seat.id}]})
    inv = client.v1.invoices.retrieve(str(sub.latest_invoice))
    assert inv.number == "ACME7-0041"
    assert inv.customer_address.to_dict() == ADDRESS
    assert (inv.customer_shipping.name, inv.customer_shipping.address.city) == ("Dock", "Austin")
    assert inv.customer_tax_exempt == "exempt"
    assert client.v1.customers.retrieve(cus.id).next_invoice_sequence == 42
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.update(cus.id, {"invoice_prefix": "lower"})
    assert (err.value.code, err.value.param) == (None, "invoice_prefix")


def test_invoice_settings_custom_fields_and_rendering_options_echoed(
    client: stripe.StripeClient,
) -> None:
    cus = client.v1.customers.create(
        {
            "invoice_settings": {
                "custom_fields": [{"name": "PO", "value": "123"}],
                "footer": "Thanks",
                "rendering_options": {"amount_tax_display": "exclude_tax", "template": "inrtem_1"},
            }
        }
    )
    assert cus.invoice_settings.to_dict() == {
        "custom_fields": [{"name": "PO", "value": "123"}],
        "default_payment_method": None,
        "footer": "Thanks",
        "rendering_options": {"amount_tax_display": "exclude_tax", "template": "inrtem_1"},
    }
    cleared = client.v1.customers.update(
        cus.id, {"invoice_settings": {"custom_fields": "", "rendering_options": ""}}
    )
    assert (cleared.invoice_settings.custom_fields, cleared.invoice_settings.rendering_options) == (
        None,
        None,
    )
    assert cleared.invoice_settings.footer == "Thanks"


def test_customer_params_the_emulator_does_not_model_are_emulator_unsupported(
    client: stripe.StripeClient,
) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"balance": 500}, "balance"),
        ({"balance": -100}, "balance"),
        ({"cash_balance": {"settings": {"reconciliation_mode": "manual"}}}, "cash_balance"),
        ({"tax": {"validate_location": "deferred"}}, "tax"),
        ({"tax_id_data": [{"type": "eu_vat", "value": "DE123456789"}]}, "tax_id_data"),
        ({"source": "tok_visa"}, "source"),
    ]
    for params, param in cases:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.customers.create(params)
        _unsupported(err, param)
    cus = client.v1.customers.create({})
    for params, param in [
        ({"balance": 1}, "balance"),
        ({"default_source": "card_1"}, "default_source"),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.customers.update(cus.id, params)
        _unsupported(err, param)
    assert client.v1.customers.retrieve(cus.id).balance == 0
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.attach(
            "pm_card_visa", {"customer": cus.id, "customer_account": "acct_1"}
        )
    _unsupported(err, "customer_account")


def test_expanding_includable_fields_not_built_is_emulator_unsupported(
    client: stripe.StripeClient,
) -> None:
    cus = client.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.retrieve(cus.id, {"expand": ["tax"]})
    _unsupported(err, "expand")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.list({"expand": ["data.subscriptions"]})
    _unsupported(err, "expand")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"email": "x@example.com", "expand": ["cash_balance"]})
    _unsupported(err, "expand")
    assert client.v1.customers.list({"email": "x@example.com"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.list({"expand": ["data.currency_options"]})
    _unsupported(err, "expand")


def test_tiers_expand_is_only_for_prices_and_refused_before_any_change(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"email": "t@example.com", "expand": ["tiers"]})
    assert (err.value.http_status, err.value.param) == (400, "expand")
    assert client.v1.customers.list({"email": "t@example.com"}).data == []
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"shipping": {"name": "Dock"}})
    assert (err.value.code, err.value.param) == ("parameter_missing", "shipping[address]")


def test_customer_list_filters_created_email_test_clock(client: stripe.StripeClient) -> None:
    a = client.v1.customers.create({"email": "a@example.com"})
    b = client.v1.customers.create({"email": "b@example.com"})
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    c = client.v1.customers.create({"email": "a@example.com", "test_clock": clock.id})
    assert [x.id for x in client.v1.customers.list({"email": "a@example.com"}).data] == [a.id]
    assert [x.id for x in client.v1.customers.list({"test_clock": clock.id}).data] == [c.id]
    exact = client.v1.customers.list({"created": a.created}).data
    assert a.id in {x.id for x in exact} and all(x.created == a.created for x in exact)
    assert client.v1.customers.list({"created": {"lt": a.created}}).data == []
    later = client.v1.customers.list({"created": {"gt": b.created}}).data
    assert later == []
    both = client.v1.customers.list({"created": {"gte": a.created, "lte": b.created}}).data
    assert [x.id for x in both] == [b.id, a.id]


def test_payment_method_list_filters_type_and_allow_redisplay(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    assert [
        p.id for p in client.v1.payment_methods.list({"customer": cus.id, "type": "card"}).data
    ] == [pm.id]
    assert client.v1.payment_methods.list({"customer": cus.id, "type": "sepa_debit"}).data == []
    listed = client.v1.customers.payment_methods.list(cus.id, {"allow_redisplay": "unspecified"})
    assert [p.id for p in listed.data] == [pm.id]
    assert (
        client.v1.customers.payment_methods.list(cus.id, {"allow_redisplay": "always"}).data == []
    )


def test_product_catalog_fields_are_echoed(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(
        {
            "name": "Widget",
            "type": "good",
            "images": ["https://example.com/a.png", "https://example.com/b.png"],
            "url": "https://example.com/widget",
            "tax_code": "txcd_10000000",
            "tax_details": {"tax_code": "txcd_10000000", "performance_location": "US-CA"},
            "statement_descriptor": "WIDGET",
            "unit_label": "widget",
            "marketing_features": [{"name": "Fast"}, {"name": "Cheap"}],
            "package_dimensions": {"height": 1.5, "length": 2, "weight": 3.25, "width": 4},
            "shippable": True,
            "description": "A widget",
        }
    )
    assert (product.type, product.url, product.tax_code) == (
        "good",
        "https://example.com/widget",
        "txcd_10000000",
    )
    assert product.images == ["https://example.com/a.png", "https://example.com/b.png"]
    assert product.tax_details.to_dict() == {
        "performance_location": "US-CA",
        "tax_code": "txcd_10000000",
    }
    assert (product.statement_descriptor, product.unit_label, product.shippable) == (
        "WIDGET",
        "widget",
        True,
    )
    assert [f.name for f in product.marketing_features] == ["Fast", "Cheap"]
    assert product.package_dimensions.to_dict() == {
        "height": 1.5,
        "length": 2.0,
        "weight": 3.25,
        "width": 4.0,
    }
    updated = client.v1.products.update(
        product.id,
        {"url": "", "images": "", "tax_details": "", "package_dimensions": "", "unit_label": ""},
    )
    assert (updated.url, updated.images, updated.tax_details, updated.package_dimensions) == (
        None,
        [],
        None,
        None,
    )
    assert updated.unit_label is None and updated.tax_code == "txcd_10000000"


def test_default_price_data_creates_the_default_price(client: stripe.StripeClient) -> None:
    product = client.v1.products.create(
        {
            "name": "Plan",
            "default_price_data": {
                "currency": "EUR",
                "unit_amount": 1500,
                "recurring": {"interval": "month", "interval_count": 3},
                "tax_behavior": "exclusive",
                "metadata": {"tier": "gold"},
            },
            "expand": ["default_price"],
        }
    )
    price = product.default_price
    assert isinstance(price, stripe.Price)
    assert (price.product, price.currency, price.unit_amount, price.tax_behavior) == (
        product.id,
        "eur",
        1500,
        "exclusive",
    )
    assert (price.recurring.interval, price.recurring.interval_count) == ("month", 3)
    assert price.metadata.to_dict() == {"tier": "gold"}
    assert client.v1.products.retrieve(product.id).default_price == price.id
    decimal = client.v1.products.create(
        {"name": "Half", "default_price_data": {"currency": "usd", "unit_amount_decimal": "0.5"}}
    )
    one_time = client.v1.prices.retrieve(str(decimal.default_price))
    assert (one_time.type, one_time.unit_amount_decimal) == ("one_time", Decimal("0.5"))
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.create({"name": "No", "default_price_data": {"currency": "usd"}})
    assert (err.value.code, err.value.param) == (
        "parameter_missing",
        "default_price_data[unit_amount]",
    )
    assert [p.name for p in client.v1.products.list().data] == ["Half", "Plan"]
    for params, param in [
        (
            {"currency": "usd", "unit_amount": 1, "currency_options": {"eur": {"unit_amount": 1}}},
            "default_price_data[currency_options]",
        ),
        (
            {"currency": "usd", "custom_unit_amount": {"enabled": True}},
            "default_price_data[custom_unit_amount]",
        ),
    ]:
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.products.create({"name": "No", "default_price_data": params})
        _unsupported(err, param)


def test_product_default_price_update_must_be_its_own_active_price(
    client: stripe.StripeClient,
) -> None:
    product = client.v1.products.create({"name": "A"})
    other = client.v1.products.create({"name": "B"})
    mine = client.v1.prices.create({"currency": "usd", "product": product.id, "unit_amount": 3})
    theirs = client.v1.prices.create({"currency": "usd", "product": other.id, "unit_amount": 3})
    assert (
        client.v1.products.update(product.id, {"default_price": mine.id}).default_price == mine.id
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.update(product.id, {"default_price": theirs.id})
    assert err.value.param == "default_price"
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.products.update(product.id, {"default_price": "price_nope"})
    assert (err.value.code, err.value.param) == ("resource_missing", "default_price")


def test_product_list_filters(client: stripe.StripeClient) -> None:
    a = client.v1.products.create(
        {"name": "A", "shippable": True, "type": "good", "url": "https://a"}
    )
    b = client.v1.products.create({"name": "B", "active": False})
    c = client.v1.products.create({"name": "C"})

    def ids(params: dict[str, Any]) -> list[str]:
        return [p.id for p in client.v1.products.list(params).data]

    assert ids({"ids": [a.id, c.id]}) == [c.id, a.id]
    assert ids({"active": False}) == [b.id]
    assert ids({"shippable": True}) == [a.id]
    assert ids({"type": "good"}) == [a.id]
    assert ids({"type": "service"}) == [c.id, b.id]
    assert ids({"url": "https://a"}) == [a.id]
    assert ids({"created": {"lt": a.created}}) == []
    assert set(ids({"created": a.created})) >= {a.id}


def test_price_currency_options_and_custom_unit_amount_are_emulator_unsupported(
    client: stripe.StripeClient,
) -> None:
    product = client.v1.products.create({"name": "P"})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {
                "currency": "usd",
                "product": product.id,
                "unit_amount": 100,
                "currency_options": {"eur": {"unit_amount": 90}},
            }
        )
    _unsupported(err, "currency_options")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {"currency": "usd", "product": product.id, "custom_unit_amount": {"enabled": True}}
        )
    _unsupported(err, "custom_unit_amount")
    price = client.v1.prices.create({"currency": "usd", "product": product.id, "unit_amount": 100})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.update(price.id, {"currency_options": {"eur": {"unit_amount": 90}}})
    _unsupported(err, "currency_options")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.retrieve(price.id, {"expand": ["currency_options"]})
    _unsupported(err, "expand")
    assert client.v1.prices.list({"product": product.id}).data[0].id == price.id


def test_lookup_key_is_unique_and_transfer_lookup_key_moves_it(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "P"})
    old = client.v1.prices.create(
        {"currency": "usd", "product": product.id, "unit_amount": 100, "lookup_key": "pro"}
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.create(
            {"currency": "usd", "product": product.id, "unit_amount": 120, "lookup_key": "pro"}
        )
    assert err.value.param == "lookup_key"
    assert f"`{old.id}`" in str(err.value.user_message)
    new = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 120,
            "lookup_key": "pro",
            "transfer_lookup_key": True,
        }
    )
    assert new.lookup_key == "pro"
    assert client.v1.prices.retrieve(old.id).lookup_key is None
    assert [p.id for p in client.v1.prices.list({"lookup_keys": ["pro"]}).data] == [new.id]
    back = client.v1.prices.update(old.id, {"lookup_key": "pro", "transfer_lookup_key": True})
    assert back.lookup_key == "pro"
    assert client.v1.prices.retrieve(new.id).lookup_key is None
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.update(new.id, {"lookup_key": "pro"})
    assert err.value.param == "lookup_key"


def test_price_tax_behavior_settable_once(client: stripe.StripeClient) -> None:
    product = client.v1.products.create({"name": "P"})
    price = client.v1.prices.create({"currency": "usd", "product": product.id, "unit_amount": 1})
    assert price.tax_behavior == "unspecified"
    assert (
        client.v1.prices.update(price.id, {"tax_behavior": "inclusive"}).tax_behavior == "inclusive"
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.prices.update(price.id, {"tax_behavior": "exclusive"})
    assert err.value.param == "tax_behavior"


def test_price_product_data_catalog_fields(client: stripe.StripeClient) -> None:
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 9,
            "product_data": {
                "name": "Inline",
                "id": "prod_inline",
                "active": False,
                "statement_descriptor": "INLINE",
                "tax_code": "txcd_1",
                "tax_details": {"tax_code": "txcd_1"},
                "unit_label": "unit",
            },
        }
    )
    product = client.v1.products.retrieve("prod_inline")
    assert price.product == "prod_inline"
    assert (product.active, product.statement_descriptor, product.tax_code, product.unit_label) == (
        False,
        "INLINE",
        "txcd_1",
        "unit",
    )
    assert product.tax_details.to_dict() == {"performance_location": None, "tax_code": "txcd_1"}


def test_price_list_filters(client: stripe.StripeClient) -> None:
    meter, metered = metered_price(client)
    product = client.v1.products.create({"name": "P"})
    yearly = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 1,
            "recurring": {"interval": "year"},
            "lookup_key": "y",
        }
    )
    once = client.v1.prices.create(
        {
            "currency": "eur",
            "product": product.id,
            "unit_amount": 1,
            "active": False,
            "lookup_key": "o",
        }
    )

    def ids(params: dict[str, Any]) -> list[str]:
        return [p.id for p in client.v1.prices.list(params).data]

    assert ids({"recurring": {"usage_type": "metered"}}) == [metered.id]
    assert ids({"recurring": {"meter": meter.id}}) == [metered.id]
    assert ids({"recurring": {"interval": "year"}}) == [yearly.id]
    assert ids({"recurring": {"interval": "month", "usage_type": "licensed"}}) == []
    assert ids({"type": "one_time"}) == [once.id]
    assert ids({"currency": "EUR"}) == [once.id]
    assert ids({"active": True, "product": product.id}) == [yearly.id]
    assert ids({"lookup_keys": ["y", "o", "missing"]}) == [once.id, yearly.id]
    assert ids({"created": {"lt": metered.created}}) == []
    assert set(ids({"created": metered.created})) >= {metered.id}
