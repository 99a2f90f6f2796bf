"""Customers and payment methods (facts §2.5, §6.5)."""

from __future__ import annotations

import pytest
import stripe

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
    assert (gone.id, gone.deleted) == (cus.id, True)
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(cus.id)
