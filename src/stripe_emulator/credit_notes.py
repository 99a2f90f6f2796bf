"""Credit notes: create, retrieve, list, lines — adjustments of a finalized invoice.

Rules (the SDK's `CreditNote.create` docstring, Stripe's API reference "Create a credit
note"): only a finalized invoice (`open` or `paid`) takes one. Each line credits an
invoice line by `quantity` (amount = the line's unit amount * quantity, rounded half
up) or by `amount`, or is a `custom_line_item` (`quantity` * `unit_amount[_decimal]`).
The note first reduces the invoice's `amount_remaining` and `amount_due` (its
`pre_payment_amount`, added to the invoice's `pre_payment_credit_notes_amount`; an open
invoice left with nothing to pay becomes `paid`); the rest is the `post_payment_amount`
(added to `post_payment_credit_notes_amount`), which `credit_amount` (the customer's
balance, applied to the next invoice at finalization), `out_of_band_amount` or
`refund_amount` must add up to exactly. Refunds need charges the emulator does not keep:
`refund_amount` and `refunds` are `emulator_unsupported`.

[inferred] A tiered line has no unit amount (`pricing.unit_amount_decimal` null); its
unit amount for a quantity credit is the line amount / line quantity. The credited
quantity of a line may not exceed its quantity, nor the credited total the invoice
total; a line credited by quantity cannot later be credited by amount (Stripe's docs:
"You can't combine discount types on an invoice line item").

Omitted vs null (checked by tests/stripe_emulator/test_conformance.py): every
`Optional` field present, null when unset; `lines` is an embedded list object.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stripe_emulator import billing
from stripe_emulator.errors import emulator_unsupported, invalid, missing_param
from stripe_emulator.events import record
from stripe_emulator.lists import in_range, paginate
from stripe_emulator.params import CREATED, EXPAND, PAGING, d, e, i, lst, m, o, s, u
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store

KIND = "credit note"
REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")
LINE = o(
    {
        "type": e("custom_line_item", "invoice_line_item", required=True),
        "invoice_line_item": s(),
        "quantity": i(),
        "amount": i(),
        "description": s(),
        "unit_amount": i(),
        "unit_amount_decimal": d(),
        "metadata": m(),
        "tax_amounts": u(),
        "tax_rates": u(),
    }
)
CREATE = {
    "invoice": s(required=True),
    "lines": lst(LINE),
    "amount": i(),
    "credit_amount": i(),
    "out_of_band_amount": i(),
    "effective_at": i(),
    "email_type": e("credit_note", "none"),
    "memo": s(),
    "metadata": m(),
    "reason": e(*REASONS),
    "expand": EXPAND,
    **{k: u() for k in ("refund_amount", "refunds", "shipping_cost")},
}
LIST = {
    **PAGING,
    "customer": s(),
    "invoice": s(),
    "created": CREATED,
    "customer_account": u(),
}


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _unit(line: Obj) -> Decimal:
    """The unit amount of an invoice line (tiered lines: amount / quantity, [inferred])."""
    unit = line["pricing"]["unit_amount_decimal"]
    if unit is not None:
        return Decimal(unit)
    return Decimal(line["amount"]) / Decimal(max(line["quantity"] or 0, 1))


def _credited(store: Store, inv: Obj) -> dict[str, tuple[int, int, bool]]:
    """Per invoice line id: (quantity credited, amount credited, credited by amount)."""
    out: dict[str, tuple[int, int, bool]] = {}
    for note in store.all("credit_notes"):
        if note["invoice"] != inv["id"] or note["status"] != "issued":
            continue
        for line in note["lines"]["data"]:
            ref = line["invoice_line_item"]
            if ref is None:
                continue
            qty, amount, by_amount = out.get(ref, (0, 0, False))
            out[ref] = (
                qty + (line["quantity"] or 0),
                amount + line["amount"],
                by_amount or line["_by_amount"],
            )
    return out


def _note_line(store: Store, inv: Obj, n: int, spec: dict[str, Any], credited: Any) -> Obj:
    name = f"lines[{n}]"
    base: Obj = {
        "id": store.new_id("cnli"),
        "object": "credit_note_line_item",
        "discount_amount": 0,
        "discount_amounts": [],
        "livemode": False,
        "metadata": spec.get("metadata") or {},
        "pretax_credit_amounts": [],
        "tax_rates": [],
        "taxes": [],
        "type": spec["type"],
    }
    if spec["type"] == "custom_line_item":
        if not spec.get("description"):
            raise missing_param(f"{name}[description]")
        qty = 1 if spec.get("quantity") is None else spec["quantity"]
        if spec.get("unit_amount_decimal") is not None:
            unit = Decimal(spec["unit_amount_decimal"])
        elif spec.get("unit_amount") is not None:
            unit = Decimal(spec["unit_amount"])
        else:
            raise missing_param(f"{name}[unit_amount]")
        if qty <= 0 or unit <= 0:
            raise invalid(f"{name}: quantity and unit amount must be positive.", param=name)
        return base | {
            "amount": _round(unit * qty),
            "description": spec["description"],
            "invoice_line_item": None,
            "quantity": qty,
            "unit_amount": _round(unit),
            "unit_amount_decimal": str(unit),
            "_by_amount": False,
        }
    ref = spec.get("invoice_line_item")
    if not ref:
        raise missing_param(f"{name}[invoice_line_item]")
    line = next((x for x in inv["lines"]["data"] if x["id"] == ref), None)
    if line is None:
        raise invalid(
            f"The invoice line item {ref} is not on invoice {inv['id']}.",
            param=f"{name}[invoice_line_item]",
            code="resource_missing",
        )
    done_qty, done_amount, by_amount = credited.get(ref, (0, 0, False))
    if (spec.get("quantity") is None) == (spec.get("amount") is None):
        raise invalid(
            f"Pass exactly one of {name}[quantity] and {name}[amount] for an invoice line item.",
            param=f"{name}[quantity]",
        )
    if spec.get("quantity") is not None:
        qty = spec["quantity"]
        if by_amount:
            raise invalid(
                f"Invoice line {ref} was credited by amount; credit it by amount again.",
                param=f"{name}[quantity]",
            )
        if qty <= 0 or done_qty + qty > line["quantity"]:
            raise invalid(
                f"{name}[quantity] must be between 1 and the line's uncredited quantity "
                f"({line['quantity'] - done_qty}).",
                param=f"{name}[quantity]",
            )
        unit = _unit(line)
        amount = _round(unit * qty)
        shown_qty: int | None = qty
    else:
        amount = spec["amount"]
        if done_qty and not by_amount:
            raise invalid(
                f"Invoice line {ref} was credited by quantity; credit it by quantity again.",
                param=f"{name}[amount]",
            )
        shown_qty = None
        unit = Decimal(amount)
    if amount <= 0 or done_amount + amount > line["amount"]:
        raise invalid(
            f"{name}: the credited amount must be positive and at most the line's uncredited "
            f"amount ({line['amount'] - done_amount}).",
            param=f"{name}[amount]" if shown_qty is None else f"{name}[quantity]",
        )
    return base | {
        "amount": amount,
        "description": spec.get("description") or line["description"],
        "invoice_line_item": ref,
        "quantity": shown_qty,
        "unit_amount": None if shown_qty is None else _round(unit),
        "unit_amount_decimal": None if shown_qty is None else str(unit),
        "_by_amount": shown_qty is None,
    }


def _split(inv: Obj, total: int, p: dict[str, Any]) -> tuple[int, int]:
    """(pre_payment, post_payment) of a note of `total` on `inv`; checks the post part."""
    pre = min(total, inv["amount_remaining"]) if inv["status"] == "open" else 0
    post = total - pre
    covered = (p.get("credit_amount") or 0) + (p.get("out_of_band_amount") or 0)
    if covered != post:
        raise invalid(
            f"The sum of credit_amount and out_of_band_amount ({covered}) must equal the "
            f"credit note's post-payment amount ({post}): on a paid invoice say where the "
            "credit goes (credit_amount credits the customer's balance).",
            param="credit_amount",
        )
    return pre, post


def create(ctx: Ctx) -> Obj:
    """POST /v1/credit_notes."""
    p = ctx.validate(CREATE)
    store = ctx.store
    inv = store.get("invoices", p["invoice"], "invoice", param="invoice")
    if inv["status"] not in ("open", "paid"):
        raise invalid(
            f"Credit notes can only be issued for finalized invoices (open or paid); "
            f"invoice {inv['id']} is '{inv['status']}'.",
            param="invoice",
        )
    specs = p.get("lines") or []
    if p.get("amount") is not None and specs:
        raise invalid("Pass either `amount` or `lines`, not both.", param="amount")
    if p.get("amount") is not None:
        raise emulator_unsupported("amount")  # a note without lines: use lines
    if not specs:
        raise missing_param("lines")
    credited = _credited(store, inv)
    lines = []
    for n, spec in enumerate(specs):
        line = _note_line(store, inv, n, spec, credited)
        ref = line["invoice_line_item"]
        if ref is not None:  # several lines of one note on the same invoice line add up
            qty, amount, by_amount = credited.get(ref, (0, 0, False))
            credited[ref] = (qty + (line["quantity"] or 0), amount + line["amount"], by_amount)
        lines.append(line)
    total = sum(line["amount"] for line in lines)
    already = inv["pre_payment_credit_notes_amount"] + inv["post_payment_credit_notes_amount"]
    if already + total > inv["total"]:
        raise invalid(
            f"The credit notes of invoice {inv['id']} would exceed its total ({inv['total']}).",
            param="lines",
        )
    pre, post = _split(inv, total, p)
    cus = store.get("customers", inv["customer"], "customer")
    now = store.now_for(cus)
    count = sum(1 for note in store.all("credit_notes") if note["invoice"] == inv["id"]) + 1
    note_id = store.new_id("cn")
    balance_txn = None
    if p.get("credit_amount"):
        cus["balance"] -= p["credit_amount"]  # negative: a credit for the next invoice
        balance_txn = store.new_id("cbtxn")
    note: Obj = {
        "id": note_id,
        "object": "credit_note",
        "amount": total,
        "amount_shipping": 0,
        "created": now,
        "currency": inv["currency"],
        "customer": inv["customer"],
        "customer_account": None,
        "customer_balance_transaction": balance_txn,
        "discount_amount": 0,
        "discount_amounts": [],
        "effective_at": p.get("effective_at") or now,
        "invoice": inv["id"],
        "lines": {
            "object": "list",
            "data": lines,
            "has_more": False,
            "url": f"/v1/credit_notes/{note_id}/lines",
        },
        "livemode": False,
        "memo": p.get("memo"),
        "metadata": p.get("metadata") or {},
        "number": f"{inv['number'] or inv['id']}-CN-{count:02d}",
        "out_of_band_amount": p.get("out_of_band_amount"),
        "pdf": f"/v1/credit_notes/{note_id}/pdf",  # [emulator] no PDFs are rendered
        "post_payment_amount": post,
        "pre_payment_amount": pre,
        "pretax_credit_amounts": [],
        "reason": p.get("reason"),
        "refunds": [],
        "shipping_cost": None,
        "status": "issued",
        "subtotal": total,
        "subtotal_excluding_tax": total,
        "total": total,
        "total_excluding_tax": total,
        "total_taxes": [],
        "type": "mixed" if pre and post else ("pre_payment" if pre else "post_payment"),
        "voided_at": None,
    }
    store.insert("credit_notes", note)
    inv["pre_payment_credit_notes_amount"] += pre
    inv["post_payment_credit_notes_amount"] += post
    if pre:
        inv["amount_due"] -= pre
        inv["amount_remaining"] -= pre
        if inv["amount_remaining"] == 0:
            billing.mark_paid(store, inv, now)
    record(store, "credit_note.created", note, now)
    return note


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/credit_notes/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("credit_notes", ctx.args[0], KIND)


def lines(ctx: Ctx) -> Obj:
    """GET /v1/credit_notes/{id}/lines."""
    p = ctx.validate(PAGING)
    note = ctx.store.get("credit_notes", ctx.args[0], KIND)
    url = f"/v1/credit_notes/{note['id']}/lines"
    return paginate(note["lines"]["data"], p, url, kind="credit note line item", presorted=True)


def list_(ctx: Ctx) -> Obj:
    """GET /v1/credit_notes (customer, invoice, created), newest first."""
    p = ctx.validate(LIST)
    rows = list(ctx.store.all("credit_notes"))
    for key in ("customer", "invoice"):
        if p.get(key):
            rows = [r for r in rows if r[key] == p[key]]
    rows = [r for r in rows if in_range(r["created"], p.get("created"))]
    return paginate(rows, p, "/v1/credit_notes", kind=KIND)


def register(router: Router) -> None:
    """Mount the credit note routes."""
    router.add("POST", "/v1/credit_notes", create)
    router.add("GET", "/v1/credit_notes", list_)
    router.add("GET", "/v1/credit_notes/{id}", retrieve)
    router.add("GET", "/v1/credit_notes/{id}/lines", lines)
