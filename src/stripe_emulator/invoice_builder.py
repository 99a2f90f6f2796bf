"""Invoice and line objects for subscriptions (basil+ shapes, facts §6.3).

Builders only: they compute lines from items and meter usage and never change state;
the billing engine decides when an invoice exists and how it moves.

Omitted vs null (checked against the SDK's annotations by tests/stripe_emulator/
test_conformance.py; the rules and their evidence are in tests/stripe_emulator/sdk_schema.py):

| field                                         | rule                                    |
|-----------------------------------------------|-----------------------------------------|
| `invoice.lines.total_count`                   | omitted (embedded list)                 |
| `invoice.payments`                            | omitted (includable, expand only)       |
| `invoice.issuer.account`                      | omitted: only when `issuer.type` is     |
|                                               | `account` (ours is always `self`)       |
| `invoice.parent.subscription_details.`        | omitted: "Only set for upcoming         |
| `subscription_proration_date`                 | invoices that preview prorations"       |
| `invoice.automatic_tax.disabled_reason`,      | null (present in Stripe's spec fixture; |
| `.provider`                                   | automatic tax is never enabled here)    |
| every other `Optional` field                  | present, null when unset                |
"""

from __future__ import annotations

from stripe_emulator import meter_events
from stripe_emulator.pricing import amount_for
from stripe_emulator.store import Obj, Store, random_token


def usage(store: Store, price: Obj, cus_id: str, start: int, end: int) -> int:
    """Billable usage of a metered price for a customer over [start, end); never negative."""
    meter = store.by_type["meters"].get(price["recurring"]["meter"])
    if meter is None:
        return 0
    return max(meter_events.aggregate(store, meter, cus_id, start, end), 0)


def make_line(
    store: Store, sub: Obj, item: Obj, inv_id: str, quantity: int, period: tuple[int, int]
) -> Obj:
    """An invoice line for one subscription item (basil+ shape, facts §6.3)."""
    price = item["price"]
    amount = amount_for(price, quantity)
    product = store.by_type["products"].get(price["product"])
    name = product["name"] if product else price["product"]
    return {
        "id": f"il_{random_token(24)}",
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": f"{quantity} \u00d7 {name}",
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": inv_id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
                "subscription_item": item["id"],
            },
            "type": "subscription_item_details",
        },
        "period": {"end": period[1], "start": period[0]},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price.get("unit_amount_decimal"),
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": sub["id"],
        "subtotal": amount,
        "taxes": [],
        "_item": item["id"],
    }


def trial_lines(store: Store, sub: Obj, inv_id: str, period: tuple[int, int]) -> list[Obj]:
    """The $0 lines of the invoice Stripe makes when a subscription starts in a trial."""
    lines = []
    for item in sub["items"]["data"]:
        qty = 0 if is_metered(item) else (item.get("quantity") or 1)
        line = make_line(store, sub, item, inv_id, qty, period)
        product = store.by_type["products"].get(item["price"]["product"])
        name = product["name"] if product else item["price"]["product"]
        line.update(amount=0, subtotal=0, description=f"Trial period for {name}")
        lines.append(line)
    return lines


def one_off_line(store: Store, sub: Obj, inv_id: str, price: Obj, qty: int, at: int) -> Obj:
    """A line for one `add_invoice_items` entry (an invoice item on the first invoice)."""
    amount = amount_for(price, qty)
    product = store.by_type["products"].get(price["product"])
    return {
        "id": f"il_{random_token(24)}",
        "object": "line_item",
        "amount": amount,
        "currency": price["currency"],
        "description": product["name"] if product else price["product"],
        "discount_amounts": [],
        "discountable": True,
        "discounts": [],
        "invoice": inv_id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": {
                "invoice_item": store.new_id("ii"),
                "proration": False,
                "proration_details": {"credited_items": None},
                "subscription": sub["id"],
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        },
        "period": {"end": at, "start": at},
        "pretax_credit_amounts": [],
        "pricing": {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price.get("unit_amount_decimal"),
        },
        "quantity": qty,
        "quantity_decimal": str(qty),
        "subscription": sub["id"],
        "subtotal": amount,
        "taxes": [],
        "_item": None,
    }


def is_metered(item: Obj) -> bool:
    """Whether the item bills its meter's usage in arrears."""
    rec = item["price"]["recurring"]
    return bool(rec and rec["usage_type"] == "metered")


def build_lines(
    store: Store,
    sub: Obj,
    inv_id: str,
    closed: tuple[int, int] | None,
    opened: tuple[int, int] | None,
) -> list[Obj]:
    """Metered items bill the closed period's usage; licensed items bill the opened period."""
    lines = []
    for item in sub["items"]["data"]:
        if is_metered(item):
            if closed is not None:
                qty = usage(store, item["price"], sub["customer"], *closed)
                lines.append(make_line(store, sub, item, inv_id, qty, closed))
            elif opened is not None:
                lines.append(make_line(store, sub, item, inv_id, 0, opened))
        elif opened is not None:
            lines.append(make_line(store, sub, item, inv_id, item.get("quantity") or 1, opened))
    return lines


def new_invoice(
    store: Store, sub: Obj, reason: str, at: int, period: tuple[int, int], inv_id: str | None = None
) -> Obj:
    """A draft invoice shell for `sub` (lines added by the caller, then `set_totals`)."""
    cus = store.by_type["customers"][sub["customer"]]
    inv_id = inv_id or store.new_id("in")
    return {
        "id": inv_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "Stripe Emulator",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_paid_off_stripe": None,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": True,  # [inferred] facts §6.2: subscription invoices auto-advance
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": reason,
        "collection_method": sub["collection_method"],
        "confirmation_secret": None,
        "created": at,
        "currency": sub["currency"],
        "custom_fields": None,
        "customer": cus["id"],
        "customer_account": None,
        "customer_address": cus.get("address"),
        "customer_email": cus.get("email"),
        "customer_name": cus.get("name"),
        "customer_phone": cus.get("phone"),
        "customer_shipping": cus.get("shipping"),
        "customer_tax_exempt": cus.get("tax_exempt") or "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": sub.get("description"),
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/invoices/{inv_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        },
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period[1],
        "period_start": period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_details": None,
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": cus.get("test_clock"),
        "threshold_reason": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": at,
        "_subscription": sub["id"],
    }


def set_lines(inv: Obj, lines: list[Obj]) -> None:
    """Attach lines and recompute every total from them."""
    inv["lines"]["data"] = lines
    total = sum(line["amount"] for line in lines)
    for key in ("subtotal", "subtotal_excluding_tax", "total", "total_excluding_tax"):
        inv[key] = total
    inv["amount_due"] = total
    inv["amount_remaining"] = total - inv["amount_paid"]
