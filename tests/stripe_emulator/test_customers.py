"""Customers and payment methods (facts §2.5, §6.5)."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from tests.stripe_emulator.sdk_schema import check

T0 = 1_767_225_600


def test_create_update_retrieve_fields(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create(
        {"email": "a@example.com", "name": "Ann", "metadata": {"tenant": "t1", "x": "y"}}
    )
    assert cus.id.startswith("cus_")
    assert (cus.object, cus.email, cus.name, cus.test_clock) == (
        "customer",
        "a@example.com",
        "Ann",
        None,
    )
    updated = client.v1.customers.update(cus.id, {"name": "Bo", "metadata": {"x": ""}})
    assert updated.name == "Bo"
    assert updated.metadata.to_dict() == {"tenant": "t1"}
    assert client.v1.customers.retrieve(cus.id).name == "Bo"


def test_clock_customers_hidden_unless_filtered(client: stripe.StripeClient) -> None:
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": T0})
    plain = client.v1.customers.create({"email": "p@example.com"})
    on_clock = client.v1.customers.create({"test_clock": clock.id})
    assert [c.id for c in client.v1.customers.list().data] == [plain.id]
    assert [c.id for c in client.v1.customers.list({"test_clock": clock.id}).data] == [on_clock.id]
    assert on_clock.test_clock == clock.id


def test_unknown_test_clock_is_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.customers.create({"test_clock": "clock_nope"})
    assert (err.value.http_status, err.value.code, err.value.param) == (
        404,
        "resource_missing",
        "test_clock",
    )


def test_attach_template_makes_a_new_pm_each_time(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    a = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    b = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    assert a.id != b.id
    assert a.id.startswith("pm_") and a.id != "pm_card_visa"
    assert (a.customer, a.type, a.card.brand, a.card.last4) == (cus.id, "card", "visa", "4242")
    listed = client.v1.payment_methods.list({"customer": cus.id})
    assert {p.id for p in listed.data} == {a.id, b.id}


def test_template_id_itself_is_not_an_object(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.retrieve("pm_card_visa")
    assert err.value.code == "resource_missing"
    assert "No such PaymentMethod: 'pm_card_visa'" in str(err.value.user_message)
    with pytest.raises(stripe.InvalidRequestError) as err2:
        client.v1.customers.update(
            cus.id, {"invoice_settings": {"default_payment_method": "pm_card_visa"}}
        )
    assert (err2.value.code, err2.value.param) == (
        "resource_missing",
        "invoice_settings[default_payment_method]",
    )


def test_default_payment_method_set_and_detach_clears_it(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    pm = client.v1.payment_methods.attach("pm_card_chargeCustomerFail", {"customer": cus.id})
    got = client.v1.customers.update(
        cus.id, {"invoice_settings": {"default_payment_method": pm.id}}
    )
    assert got.invoice_settings.default_payment_method == pm.id
    client.v1.payment_methods.detach(pm.id)
    assert client.v1.customers.retrieve(cus.id).invoice_settings.default_payment_method is None


def test_attach_needs_a_customer(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.payment_methods.attach("pm_card_visa", {"customer": "cus_nope"})
    assert (err.value.code, err.value.param) == ("resource_missing", "customer")


def test_delete_customer(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    gone = client.v1.customers.delete(cus.id)
    assert gone.to_dict() == {"id": cus.id, "object": "customer", "deleted": True}
    assert check(_json(gone), stripe.Customer) == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(cus.id)


def _json(obj: Any) -> dict[str, Any]:
    """The JSON body the emulator sent for `obj` (not the SDK's decoded copy)."""
    data: dict[str, Any] = obj.last_response.data
    return data


def test_customer_shape_matches_the_sdk_schema(client: stripe.StripeClient) -> None:
    plain = client.v1.customers.create({})
    sdk_fields = {k for k in stripe.Customer.__annotations__ if k != "OBJECT_NAME"}
    # includable fields and names never set are omitted (sdk_schema.OMITTED, customers.py)
    omitted = {
        "cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids",
        "business_name", "individual_name", "deleted",
    }  # fmt: skip
    assert set(_json(plain)) == sdk_fields - omitted
    assert (plain.customer_account, plain.discount, plain.address, plain.shipping) == (
        None,
        None,
        None,
        None,
    )
    assert (plain.balance, plain.tax_exempt, plain.preferred_locales) == (0, "none", [])
    full = client.v1.customers.create(
        {
            "address": {"city": "Paris", "country": "FR"},
            "shipping": {"name": "Dock", "address": {"line1": "1 Quai"}},
            "business_name": "Acme",
            "individual_name": "Ann",
            "invoice_settings": {"custom_fields": [{"name": "PO", "value": "1"}]},
            "preferred_locales": ["fr"],
        }
    )
    assert set(_json(full)) == sdk_fields - omitted | {"business_name", "individual_name"}
    responses = [
        _json(plain),
        _json(full),
        _json(client.v1.customers.retrieve(full.id)),
        _json(client.v1.customers.update(full.id, {"name": "N"})),
    ]
    for body in responses + _json(client.v1.customers.list())["data"]:
        assert check(body, stripe.Customer) == []


def test_payment_method_shape_matches_the_sdk_schema(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    pm = client.v1.payment_methods.attach("pm_card_mastercard", {"customer": cus.id})
    body = _json(pm)
    assert check(body, stripe.PaymentMethod) == []
    assert set(body) == {
        "id", "object", "allow_redisplay", "billing_details", "card", "created", "customer",
        "customer_account", "livemode", "metadata", "type",
    }  # fmt: skip
    card_fields = {k for k in stripe.PaymentMethod.Card.__annotations__}
    assert set(body["card"]) == card_fields - {"description", "iin", "issuer"}
    assert body["card"]["checks"] == {
        "address_line1_check": None,
        "address_postal_code_check": None,
        "cvc_check": "unchecked",
    }
    assert body["card"]["networks"] == {"available": ["mastercard"], "preferred": None}
    assert (body["card"]["display_brand"], body["card"]["regulated_status"]) == (
        "mastercard",
        "unregulated",
    )
    assert body["card"]["three_d_secure_usage"] == {"supported": True}
    assert (body["card"]["wallet"], body["card"]["generated_from"]) == (None, None)
    assert set(body["billing_details"]) == set(stripe.PaymentMethod.BillingDetails.__annotations__)
    for other in (
        _json(client.v1.payment_methods.retrieve(pm.id)),
        _json(client.v1.payment_methods.detach(pm.id)),
    ):
        assert check(other, stripe.PaymentMethod) == []
    pm2 = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    for listed in (
        _json(client.v1.payment_methods.list({"customer": cus.id})),
        _json(client.v1.customers.payment_methods.list(cus.id)),
    ):
        assert [p["id"] for p in listed["data"]] == [pm2.id]
        assert check(listed["data"][0], stripe.PaymentMethod) == []
