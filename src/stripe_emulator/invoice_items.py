"""Invoice items: create, retrieve, list; pending items become lines of the next invoice.

`POST /v1/invoiceitems` makes a *pending* item (`invoice: null`) for a customer. The
billing engine claims pending items when it creates the customer's next subscription
invoice (`claim_pending`): an item naming a `subscription` goes only onto that
subscription's next invoice; one without goes onto the next invoice of any of the
customer's subscriptions, as Stripe does ("If no invoice is specified, the item will be
on the next invoice created for the customer specified", SDK docstring). Once claimed,
the item carries `invoice` and its line (`parent.type == "invoice_item_details"`) sits
first on the invoice (facts §6.3: pending items first).

Amount: `amount` alone (quantity 1), or `quantity` * `unit_amount_decimal`, or
`quantity` * a one-time `pricing[price]` (per-unit or tiered, `pricing.amount_for`),
rounded half up to the minor unit. [inferred] `amount` together with `quantity` or a
unit amount is refused: the SDK documents `amount` as "unit_amount * quantity".

Omitted vs null (checked by tests/stripe_emulator/test_conformance.py):
`invoiceitem.deleted` omitted (live objects); every other `Optional` field present,
null when unset (`parent` null without a subscription, `pricing.price_details` null
without a price, `net_amount` null because items are `discountable`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stripe_emulator.errors import emulator_unsupported, invalid, missing_param
from stripe_emulator.events import record
from stripe_emulator.invoice_builder import set_lines
from stripe_emulator.lists import in_range, paginate
from stripe_emulator.params import CREATED, EXPAND, PAGING, b, d, i, lst, m, o, s, u
from stripe_emulator.pricing import amount_for
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, random_token

KIND = "invoiceitem"
CREATE = {
    "customer": s(),
    "amount": i(),
    "currency": s(),
    "description": s(),
    "discountable": b(),
    "invoice": s(),
    "metadata": m(),
    "period": o({"start": i(required=True), "end": i(required=True)}),
    "pricing": o({"price": s()}),
    "quantity": i(),
    "quantity_decimal": u(),
    "subscription": s(),
    "unit_amount_decimal": d(),
    "expand": EXPAND,
    **{k: u() for k in ("customer_account", "discounts", "price_data", "tax_behavior", "tax_code")},
    "tax_rates": lst(s()),
}
LIST = {
    **PAGING,
    "customer": s(),
    "invoice": s(),
    "pending": b(),
    "created": CREATED,
    "customer_account": u(),
}


def _now(store: Store, cus: Obj) -> int:
    return store.now_for(cus)


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _pricing(store: Store, p: dict[str, Any], currency: str | None) -> tuple[int, int, Obj]:
    """(amount, quantity, pricing hash) from the create params."""
    has_unit = p.get("unit_amount_decimal") is not None
    price_id = (p.get("pricing") or {}).get("price")
    quantity = p.get("quantity")
    if quantity is not None and quantity < 0:
        raise invalid("quantity must be a non-negative integer.", param="quantity")
    if p.get("amount") is not None:
        if has_unit or price_id or quantity is not None:
            # [inferred] the SDK: amount "should always be equal to unit_amount * quantity"
            raise invalid(
                "Pass either `amount`, or `quantity` with `unit_amount_decimal` or "
                "`pricing[price]`, not both.",
                param="amount",
            )
        if not currency:
            raise missing_param("currency")
        return (
            p["amount"],
            1,
            {
                "price_details": None,
                "type": "price_details",
                "unit_amount_decimal": str(p["amount"]),
            },
        )
    qty = 1 if quantity is None else quantity
    if has_unit and price_id:
        raise invalid(
            "Pass either `unit_amount_decimal` or `pricing[price]`, not both.",
            param="unit_amount_decimal",
        )
    if has_unit:
        if not currency:
            raise missing_param("currency")
        unit: Decimal = p["unit_amount_decimal"]
        return (
            _round(unit * qty),
            qty,
            {"price_details": None, "type": "price_details", "unit_amount_decimal": str(unit)},
        )
    if price_id:
        price = store.get("prices", price_id, "price", param="pricing[price]")
        if price["recurring"] is not None:
            # [inferred] invoice items bill one-time prices; a recurring one is for items
            raise invalid(
                f"The price specified ({price_id}) is a recurring price; invoice items need "
                "one-time prices.",
                param="pricing[price]",
            )
        if currency and currency != price["currency"]:
            raise invalid(
                f"The currency {currency} does not match the price's currency {price['currency']}.",
                param="currency",
            )
        return (
            amount_for(price, qty),
            qty,
            {
                "price_details": {"price": price["id"], "product": price["product"]},
                "type": "price_details",
                "unit_amount_decimal": price.get("unit_amount_decimal"),
            },
        )
    raise missing_param("amount")


def create(ctx: Ctx) -> Obj:
    """POST /v1/invoiceitems: a pending item, or one on a draft `invoice`."""
    p = ctx.validate(CREATE)
    store = ctx.store
    if not p.get("customer"):
        raise missing_param("customer")
    if p.get("tax_rates"):
        raise emulator_unsupported("tax_rates")
    cus = store.get("customers", p["customer"], "customer", param="customer")
    sub = None
    if p.get("subscription"):
        sub = store.get("subscriptions", p["subscription"], "subscription", param="subscription")
        if sub["customer"] != cus["id"]:
            raise invalid(
                f"The subscription {sub['id']} does not belong to customer {cus['id']}.",
                param="subscription",
            )
    invoice = None
    if p.get("invoice"):
        invoice = store.get("invoices", p["invoice"], "invoice", param="invoice")
        if invoice["customer"] != cus["id"]:
            raise invalid(
                f"The invoice {invoice['id']} does not belong to customer {cus['id']}.",
                param="invoice",
            )
        if invoice["status"] != "draft":
            raise invalid(
                f"You can only add invoice items to draft invoices; {invoice['id']} is "
                f"'{invoice['status']}'.",
                param="invoice",
            )
    currency = (p.get("currency") or "").lower() or None
    amount, quantity, pricing = _pricing(store, p, currency)
    if currency is None:
        currency = str(store.get("prices", pricing["price_details"]["price"], "price")["currency"])
    now = _now(store, cus)
    period = p.get("period") or {"start": now, "end": now}
    if period["end"] < period["start"]:
        raise invalid(
            "The period end must be greater than or equal to the start.", param="period[end]"
        )
    item: Obj = {
        "id": store.new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": cus["id"],
        "customer_account": None,
        "date": now,
        "description": p.get("description"),
        "discountable": True if p.get("discountable") is None else p["discountable"],
        "discounts": [],
        "frozen_fields": None,
        "invoice": None,
        "invoicing_rules": None,
        "livemode": False,
        "metadata": p.get("metadata") or {},
        "net_amount": None,
        "parent": None
        if sub is None
        else {
            "subscription_details": {"subscription": sub["id"], "subscription_item": None},
            "type": "subscription_details",
        },
        "period": {"end": period["end"], "start": period["start"]},
        "pricing": pricing,
        "proration": False,
        "proration_details": {"credited_items": None, "discount_amounts": []},
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": cus.get("test_clock"),
    }
    store.insert("invoiceitems", item)
    if invoice is not None:
        _attach(store, item, invoice)
    record(store, "invoiceitem.created", item, now)
    return item


def line_for(item: Obj, inv_id: str, subscription_id: str | None) -> Obj:
    """The invoice line of a claimed invoice item (facts §6.3 basil+ shape)."""
    return {
        "id": f"il_{random_token(24)}",
        "object": "line_item",
        "amount": item["amount"],
        "currency": item["currency"],
        "description": item["description"],
        "discount_amounts": [],
        "discountable": item["discountable"],
        "discounts": [],
        "invoice": inv_id,
        "livemode": False,
        "metadata": dict(item["metadata"]),
        "parent": {
            "invoice_item_details": {
                "invoice_item": item["id"],
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": subscription_id,
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        },
        "period": dict(item["period"]),
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": None
            if item["pricing"]["price_details"] is None
            else dict(item["pricing"]["price_details"]),
            "type": "price_details",
            "unit_amount_decimal": item["pricing"]["unit_amount_decimal"],
        },
        "quantity": item["quantity"],
        "quantity_decimal": item["quantity_decimal"],
        "subscription": subscription_id,
        "subtotal": item["amount"],
        "taxes": [],
        "_item": None,
    }


def _attach(store: Store, item: Obj, invoice: Obj) -> None:
    """Put an item on a draft invoice as its first line and recompute the totals."""
    item["invoice"] = invoice["id"]
    line = line_for(item, invoice["id"], invoice.get("_subscription"))
    set_lines(invoice, [line, *invoice["lines"]["data"]])


def claim_pending(store: Store, sub: Obj, inv_id: str) -> list[Obj]:
    """Lines for the customer's pending items that belong on `sub`'s new invoice.

    Items naming this subscription, and items naming none, in the invoice's currency;
    each is marked as on `inv_id`. Newest first, as Stripe lists pending items.
    """
    lines = []
    for item in reversed(list(store.all("invoiceitems"))):
        if item["invoice"] is not None or item["customer"] != sub["customer"]:
            continue
        parent = item["parent"]
        named = parent["subscription_details"]["subscription"] if parent else None
        if named not in (None, sub["id"]) or item["currency"] != sub["currency"]:
            continue
        item["invoice"] = inv_id
        lines.append(line_for(item, inv_id, sub["id"]))
    return lines


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/invoiceitems/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("invoiceitems", ctx.args[0], KIND)


def list_(ctx: Ctx) -> Obj:
    """GET /v1/invoiceitems (customer, invoice, pending, created), newest first."""
    p = ctx.validate(LIST)
    rows = list(ctx.store.all("invoiceitems"))
    if p.get("customer"):
        rows = [r for r in rows if r["customer"] == p["customer"]]
    if p.get("invoice"):
        rows = [r for r in rows if r["invoice"] == p["invoice"]]
    if p.get("pending") is not None:
        rows = [r for r in rows if (r["invoice"] is None) == p["pending"]]
    rows = [r for r in rows if in_range(r["date"], p.get("created"))]
    return paginate(rows, p, "/v1/invoiceitems", kind=KIND)


def register(router: Router) -> None:
    """Mount the invoice item routes."""
    router.add("POST", "/v1/invoiceitems", create)
    router.add("GET", "/v1/invoiceitems", list_)
    router.add("GET", "/v1/invoiceitems/{id}", retrieve)
