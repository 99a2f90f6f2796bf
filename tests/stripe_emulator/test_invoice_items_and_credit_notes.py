"""Invoice items land on the next invoice; credit notes adjust a finalized invoice."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import stripe

from tests.stripe_emulator.helpers import advance, clock_customer, metered_price, send_event
from tests.support.emulator import TEST_KEY


def _billed_world(client: stripe.StripeClient, usage: int = 425) -> tuple[Any, Any, Any, Any]:
    """A customer on a clock, one metered subscription, `usage` calls billed on a paid
    renewal invoice; returns (clock, customer, subscription, that invoice)."""
    now = int(time.time())
    _, price = metered_price(client)
    clock, cus = clock_customer(client, now - 7200)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 600, usage, "u1")
    end = sub["items"].data[0].current_period_end
    advance(client, clock.id, end + 2 * 3600)
    inv = _cycle_invoices(client, sub.id)[0]
    return clock, cus, sub, inv


def _cycle_invoices(client: stripe.StripeClient, sub_id: str) -> list[Any]:
    found = client.v1.invoices.list({"subscription": sub_id, "limit": 100}).data
    return [i for i in found if i.billing_reason == "subscription_cycle"]


def _period_end(client: stripe.StripeClient, sub_id: str) -> int:
    return int(client.v1.subscriptions.retrieve(sub_id)["items"].data[0].current_period_end)


def test_a_pending_item_is_a_line_of_the_next_invoice_only(client: stripe.StripeClient) -> None:
    clock, cus, sub, first = _billed_world(client)
    assert (first.status, first.amount_paid) == ("paid", 425 * 5)
    item = client.v1.invoice_items.create(
        {
            "customer": cus.id,
            "subscription": sub.id,
            "currency": "usd",
            "quantity": 5,
            "unit_amount_decimal": "5",  # type: ignore[typeddict-item]
            "description": "api_calls, 5 units after close",
            "period": {"start": first.period_start, "end": first.period_end},
            "metadata": {"correction": "c1"},
        }
    )
    assert (item.amount, item.quantity, item.invoice, item.currency) == (25, 5, None, "usd")
    pending = client.v1.invoice_items.list({"customer": cus.id, "pending": True}).data
    assert [p.id for p in pending] == [item.id]
    advance(client, clock.id, _period_end(client, sub.id) + 7200)
    invoices = _cycle_invoices(client, sub.id)
    assert len(invoices) == 2
    nxt = invoices[0]
    kinds = [line.parent.type for line in nxt.lines.data]
    assert kinds == ["invoice_item_details", "subscription_item_details"]
    line = nxt.lines.data[0]
    assert line.parent.invoice_item_details.invoice_item == item.id
    assert (line.amount, line.quantity, line.description) == (25, 5, item.description)
    assert (nxt.total, nxt.amount_paid) == (25, 25)  # no usage in the new period
    claimed = client.v1.invoice_items.retrieve(item.id)
    assert claimed.invoice == nxt.id
    assert client.v1.invoice_items.list({"customer": cus.id, "pending": True}).data == []
    assert [i.id for i in client.v1.invoice_items.list({"invoice": nxt.id}).data] == [item.id]
    # The invoice it was claimed by does not take it again on the one after.
    advance(client, clock.id, _period_end(client, sub.id) + 7200)
    third = _cycle_invoices(client, sub.id)[0]
    assert third.id != nxt.id and third.total == 0


def test_an_item_priced_by_amount_or_by_price(client: stripe.StripeClient) -> None:
    _, cus = clock_customer(client, int(time.time()))
    product = client.v1.products.create({"name": "Setup"})
    one_time = client.v1.prices.create(
        {"currency": "usd", "product": product.id, "unit_amount": 900}
    )
    by_amount = client.v1.invoice_items.create(
        {"customer": cus.id, "amount": 123, "currency": "usd"}
    )
    assert (by_amount.amount, by_amount.quantity, by_amount.parent) == (123, 1, None)
    by_price = client.v1.invoice_items.create(
        {"customer": cus.id, "pricing": {"price": one_time.id}, "quantity": 3}
    )
    assert (by_price.amount, by_price.currency) == (2700, "usd")
    assert by_price.pricing.price_details.price == one_time.id


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"amount": 5, "currency": "usd", "colour": "red"}, "colour", "parameter_unknown"),
        ({"currency": "usd"}, "amount", "parameter_missing"),
        ({"amount": 5}, "currency", "parameter_missing"),
        ({"amount": 5, "currency": "usd", "quantity": 2}, "amount", None),
        ({"amount": 5, "currency": "usd", "tax_code": "x"}, "tax_code", "emulator_unsupported"),
    ],
)
def test_bad_invoice_items_are_refused_by_name(
    base_url: str, client: stripe.StripeClient, params: dict[str, Any], param: str, code: str | None
) -> None:
    cus = client.v1.customers.create({"email": "x@example.com"})
    answer = requests.post(
        f"{base_url}/v1/invoiceitems",
        data={"customer": cus.id, **params},
        headers={"Authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["param"], error.get("code")) == (param, code)


def test_a_credit_note_on_a_paid_invoice_credits_the_balance_and_the_next_invoice(
    client: stripe.StripeClient,
) -> None:
    clock, cus, sub, inv = _billed_world(client, usage=432)
    line = inv.lines.data[0]
    note = client.v1.credit_notes.create(
        {
            "invoice": inv.id,
            "lines": [{"type": "invoice_line_item", "invoice_line_item": line.id, "quantity": 7}],
            "credit_amount": 35,
            "reason": "duplicate",
            "metadata": {"correction": "c2"},
        }
    )
    assert (note.amount, note.total, note.post_payment_amount, note.pre_payment_amount) == (
        35,
        35,
        35,
        0,
    )
    assert (note.type, note.status, note.lines.data[0].quantity) == ("post_payment", "issued", 7)
    assert note.lines.data[0].unit_amount == 5
    after = client.v1.invoices.retrieve(inv.id)
    assert (after.post_payment_credit_notes_amount, after.pre_payment_credit_notes_amount) == (
        35,
        0,
    )
    assert after.total - after.post_payment_credit_notes_amount == 425 * 5
    assert client.v1.customers.retrieve(cus.id).balance == -35
    assert [n.id for n in client.v1.credit_notes.list({"invoice": inv.id}).data] == [note.id]
    assert client.v1.credit_notes.retrieve(note.id).number.endswith("-CN-01")
    events = client.v1.events.list({"type": "credit_note.created"}).data
    assert [e.data.object["id"] for e in events] == [note.id]
    # The balance is spent by the next invoice that has something to pay.
    client.v1.invoice_items.create({"customer": cus.id, "amount": 100, "currency": "usd"})
    advance(client, clock.id, _period_end(client, sub.id) + 7200)
    nxt = _cycle_invoices(client, sub.id)[0]
    assert (nxt.total, nxt.starting_balance, nxt.amount_due, nxt.ending_balance) == (
        100,
        -35,
        65,
        0,
    )
    assert client.v1.customers.retrieve(cus.id).balance == 0


def test_a_credit_note_on_an_open_invoice_reduces_what_is_due(client: stripe.StripeClient) -> None:
    now = int(time.time())
    _, price = metered_price(client)
    clock, cus = clock_customer(client, now - 7200, card="pm_card_chargeCustomerFail")
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 600, 10, "u1")
    advance(client, clock.id, sub["items"].data[0].current_period_end + 7200)
    inv = _cycle_invoices(client, sub.id)[0]
    assert (inv.status, inv.amount_due) == ("open", 50)
    line = inv.lines.data[0].id
    note = client.v1.credit_notes.create(
        {
            "invoice": inv.id,
            "lines": [{"type": "invoice_line_item", "invoice_line_item": line, "quantity": 4}],
        }
    )
    assert (note.pre_payment_amount, note.post_payment_amount, note.type) == (20, 0, "pre_payment")
    after = client.v1.invoices.retrieve(inv.id)
    assert (after.amount_due, after.amount_remaining, after.pre_payment_credit_notes_amount) == (
        30,
        30,
        20,
    )
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.credit_notes.create(
            {
                "invoice": inv.id,
                "lines": [{"type": "invoice_line_item", "invoice_line_item": line, "quantity": 7}],
            }
        )
    assert too_much.value.param == "lines[0][quantity]"
    rest = client.v1.credit_notes.create(
        {
            "invoice": inv.id,
            "lines": [{"type": "invoice_line_item", "invoice_line_item": line, "quantity": 6}],
        }
    )
    assert rest.amount == 30
    assert client.v1.invoices.retrieve(inv.id).status == "paid"  # nothing left to pay


def test_credit_notes_need_a_finalized_invoice_and_a_home_for_the_post_payment_part(
    client: stripe.StripeClient,
) -> None:
    _, _, _, paid = _billed_world(client, usage=10)
    line = paid.lines.data[0].id
    spec = [{"type": "invoice_line_item", "invoice_line_item": line, "quantity": 1}]
    with pytest.raises(stripe.InvalidRequestError) as nowhere:
        client.v1.credit_notes.create({"invoice": paid.id, "lines": spec})  # type: ignore[typeddict-item]
    assert nowhere.value.param == "credit_amount"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.credit_notes.create({"invoice": paid.id, "lines": spec, "colour": "red"})  # type: ignore[typeddict-item]
    assert (unknown.value.param, unknown.value.code) == ("colour", "parameter_unknown")
    drafts = [
        i
        for i in client.v1.invoices.list({"customer": paid.customer, "limit": 100}).data
        if i.status == "draft"
    ]
    for draft in drafts:
        with pytest.raises(stripe.InvalidRequestError) as not_final:
            client.v1.credit_notes.create({"invoice": draft.id, "lines": spec})  # type: ignore[typeddict-item]
        assert not_final.value.param == "invoice"
    assert client.v1.credit_notes.list({"invoice": paid.id}).data == []


def test_an_idempotency_key_replays_the_credit_note(client: stripe.StripeClient) -> None:
    _, _, _, paid = _billed_world(client, usage=10)
    params: Any = {
        "invoice": paid.id,
        "lines": [
            {"type": "invoice_line_item", "invoice_line_item": paid.lines.data[0].id, "quantity": 2}
        ],
        "credit_amount": 10,
    }
    first = client.v1.credit_notes.create(params, {"idempotency_key": "cn-once"})
    again = client.v1.credit_notes.create(params, {"idempotency_key": "cn-once"})
    assert first.id == again.id
    assert len(client.v1.credit_notes.list({"invoice": paid.id}).data) == 1
    assert client.v1.invoices.retrieve(paid.id).post_payment_credit_notes_amount == 10
