"""Invoices: retrieve, list, lines, finalize, pay, void, mark_uncollectible, create_preview.

Status moves follow facts §6.1: draft -> open (finalize) -> paid (pay) | void |
uncollectible; there is no `finalized` status.
"""

from __future__ import annotations

from stripe_emulator import billing, invoice_builder
from stripe_emulator.errors import StripeError, invalid, missing_param
from stripe_emulator.lists import in_range, paginate
from stripe_emulator.params import CREATED, EXPAND, PAGING, b, e, o, s, u
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, random_token

KIND = "invoice"
LIST = {
    **PAGING,
    "customer": s(),
    "subscription": s(),
    "status": e("draft", "open", "paid", "uncollectible", "void"),
    "collection_method": e("charge_automatically", "send_invoice"),
    "created": CREATED,
    "due_date": CREATED,
    "customer_account": u(),
}
PAY = {
    "payment_method": s(),
    "paid_out_of_band": b(),
    "off_session": b(),
    "forgive": b(),
    "source": s(),
    "mandate": s(),
    "expand": EXPAND,
}
PREVIEW = {
    "customer": s(),
    "subscription": s(),
    "preview_mode": e("next", "recurring"),
    "subscription_details": o(
        {
            "proration_behavior": e("always_invoice", "create_prorations", "none"),
            **{
                k: u()
                for k in (
                    "billing_cycle_anchor",
                    "billing_mode",
                    "billing_schedules",
                    "cancel_at",
                    "cancel_at_period_end",
                    "cancel_now",
                    "default_tax_rates",
                    "items",
                    "proration_date",
                    "resume_at",
                    "start_date",
                    "trial_end",
                )
            },
        }
    ),
    "expand": EXPAND,
    **{
        k: u()
        for k in (
            "automatic_tax",
            "currency",
            "customer_account",
            "customer_details",
            "discounts",
            "invoice_items",
            "issuer",
            "on_behalf_of",
            "schedule",
            "schedule_details",
        )
    },
}


def _transition_error(inv: Obj, action: str) -> StripeError:
    # Code [inferred]: Stripe's wording for each transition varies; ours names the status.
    return invalid(
        f"You cannot {action} invoice {inv['id']} because its status is '{inv['status']}'.",
        param="id",
        code="status_transition_invalid",
    )


def _now(store: Store, inv: Obj) -> int:
    return store.now_for(store.by_type["customers"].get(inv["customer"]))


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/invoices/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("invoices", ctx.args[0], KIND)


def list_(ctx: Ctx) -> Obj:
    """GET /v1/invoices (customer, subscription, status, collection_method, created)."""
    p = ctx.validate(LIST)
    rows = list(ctx.store.all("invoices"))
    if p.get("customer"):
        rows = [r for r in rows if r["customer"] == p["customer"]]
    if p.get("subscription"):
        rows = [r for r in rows if r.get("_subscription") == p["subscription"]]
    for key in ("status", "collection_method"):
        if p.get(key):
            rows = [r for r in rows if r[key] == p[key]]
    rows = [r for r in rows if in_range(r["created"], p.get("created"))]
    if p.get("due_date"):
        rows = [r for r in rows if in_range(r["due_date"], p["due_date"])]
    return paginate(rows, p, "/v1/invoices", kind=KIND)


def lines(ctx: Ctx) -> Obj:
    """GET /v1/invoices/{id}/lines."""
    p = ctx.validate(PAGING)
    inv = ctx.store.get("invoices", ctx.args[0], KIND)
    url = f"/v1/invoices/{inv['id']}/lines"
    return paginate(inv["lines"]["data"], p, url, kind="invoice line item", presorted=True)


def finalize(ctx: Ctx) -> Obj:
    """POST /v1/invoices/{id}/finalize: draft -> open (auto-advance charges at once)."""
    p = ctx.validate({"auto_advance": b(), "expand": EXPAND})
    store = ctx.store
    inv = store.get("invoices", ctx.args[0], KIND)
    if inv["status"] != "draft":
        raise _transition_error(inv, "finalize")
    if p.get("auto_advance") is not None:
        inv["auto_advance"] = p["auto_advance"]
    now = _now(store, inv)
    billing.finalize(store, inv, now)
    _drop_pending(store, inv)
    if (
        inv["status"] == "open"
        and inv["auto_advance"]
        and inv["collection_method"] == "charge_automatically"
    ):
        billing.charge(store, inv, now)  # [inferred] collection attempt right after finalizing
    return inv


def _drop_pending(store: Store, inv: Obj) -> None:
    sub = store.by_type["subscriptions"].get(inv.get("_subscription", ""))
    if sub is not None and inv["id"] in sub["_pending"]:
        sub["_pending"].remove(inv["id"])


def pay(ctx: Ctx) -> Obj:
    """POST /v1/invoices/{id}/pay: a decline is a 402 card_error and the invoice stays open."""
    p = ctx.validate(PAY)
    store = ctx.store
    inv = store.get("invoices", ctx.args[0], KIND)
    if inv["status"] not in ("draft", "open", "uncollectible"):
        raise _transition_error(inv, "pay")
    pm = None
    if p.get("payment_method"):
        pm = store.by_type["payment_methods"].get(p["payment_method"])
        if pm is None or pm["customer"] != inv["customer"]:
            raise invalid(
                f"No such PaymentMethod: '{p['payment_method']}'",
                param="payment_method",
                code="resource_missing",
            )
    now = _now(store, inv)
    if inv["status"] == "draft":
        billing.finalize(store, inv, now)
        _drop_pending(store, inv)
        if inv["status"] == "paid":
            return inv
    if p.get("paid_out_of_band"):
        billing.mark_paid(store, inv, now)
        return inv
    sub = store.by_type["subscriptions"].get(inv.get("_subscription", ""))
    before = billing.snapshot(sub) if sub is not None else None
    failure = billing.charge(store, inv, now, pm)
    if sub is not None and before is not None:
        billing.sub_changed(store, sub, before, now)  # e.g. past_due -> active
    if failure is not None:
        raise failure
    return inv


def void(ctx: Ctx) -> Obj:
    """POST /v1/invoices/{id}/void: open or uncollectible -> void."""
    ctx.validate({"expand": EXPAND})
    store = ctx.store
    inv = store.get("invoices", ctx.args[0], KIND)
    if inv["status"] not in ("open", "uncollectible"):
        raise _transition_error(inv, "void")
    inv["status"] = "void"
    inv["amount_remaining"] = 0
    inv["status_transitions"]["voided_at"] = _now(store, inv)
    return inv


def mark_uncollectible(ctx: Ctx) -> Obj:
    """POST /v1/invoices/{id}/mark_uncollectible: open -> uncollectible."""
    ctx.validate({"expand": EXPAND})
    store = ctx.store
    inv = store.get("invoices", ctx.args[0], KIND)
    if inv["status"] != "open":
        raise _transition_error(inv, "mark uncollectible")
    inv["status"] = "uncollectible"
    inv["status_transitions"]["marked_uncollectible_at"] = _now(store, inv)
    return inv


def create_preview(ctx: Ctx) -> Obj:
    """POST /v1/invoices/create_preview: the invoice the current period would produce now.

    Metered lines carry the usage so far in `[current_period_start, current_period_end)`.
    The preview is not stored (facts §6.4).
    """
    p = ctx.validate(PREVIEW)
    store = ctx.store
    if not p.get("customer") and not p.get("subscription"):
        raise missing_param("customer")
    if p.get("subscription"):
        sub = store.get("subscriptions", p["subscription"], "subscription", param="subscription")
        if p.get("customer") and p["customer"] != sub["customer"]:
            raise invalid(
                "The subscription does not belong to this customer.", param="subscription"
            )
    else:
        store.get("customers", p["customer"], "customer", param="customer")
        subs = [
            s_
            for s_ in store.all("subscriptions")
            if s_["customer"] == p["customer"] and s_["status"] != "canceled"
        ]
        if not subs:
            raise invalid(
                f"No upcoming invoices for customer: {p['customer']}",
                param="customer",
                code="invoice_upcoming_none",
            )
        sub = max(subs, key=lambda x: x["_seq"])
    if sub["status"] == "canceled":
        raise invalid(
            f"No upcoming invoices for subscription: {sub['id']}",
            param="subscription",
            code="invoice_upcoming_none",
        )
    current = billing.period_bounds(sub, sub["_k"])
    following = billing.period_bounds(sub, sub["_k"] + 1)
    inv_id = f"upcoming_in_{random_token(14)}"
    inv = invoice_builder.new_invoice(store, sub, "upcoming", current[1], current, inv_id=inv_id)
    invoice_builder.set_lines(
        inv, invoice_builder.build_lines(store, sub, inv_id, current, following)
    )
    inv["automatically_finalizes_at"] = current[1] + billing.FINALIZE_DELAY_S
    inv["webhooks_delivered_at"] = None
    inv["lines"]["url"] = f"/v1/invoices/{inv_id}/lines"
    return inv


def register(router: Router) -> None:
    """Mount invoice routes."""
    router.add("GET", "/v1/invoices", list_)
    router.add("POST", "/v1/invoices/create_preview", create_preview)
    router.add("GET", "/v1/invoices/{id}", retrieve)
    router.add("GET", "/v1/invoices/{id}/lines", lines)
    router.add("POST", "/v1/invoices/{id}/finalize", finalize)
    router.add("POST", "/v1/invoices/{id}/pay", pay)
    router.add("POST", "/v1/invoices/{id}/void", void)
    router.add("POST", "/v1/invoices/{id}/mark_uncollectible", mark_uncollectible)
