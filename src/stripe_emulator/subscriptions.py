"""Subscriptions and subscription items (facts §5).

Periods live on the items (`current_period_start/end`), anchored at the start in the
customer's time (clock time under a test clock, or `backdate_start_date`). Creation makes
a `subscription_create` invoice, finalized at once for automatic collection; a $0 one
(metered-only) is `paid` without any payment method (facts §5.5).

Trials (`trial_period_days` / `trial_end`) and a future `billing_cycle_anchor` make a
stub period (`_k == -1`) before the regular ones; `cancel_at` ends the subscription at
that moment with a final invoice for metered usage (see billing.py).

Omitted vs null (the SDK's annotations are the schema; `Optional` = present, null):

| field                                   | rule                                         |
|-----------------------------------------|----------------------------------------------|
| `subscription_item.quantity`            | omitted on metered items, int on licensed    |
| `subscription.billing_mode.updated_at`  | omitted until the billing mode is changed    |
| `subscription.items.total_count`        | omitted (embedded list)                      |
| `invoice.lines.total_count`             | omitted (embedded list; see invoice_builder) |
| `invoice.payments`, `*.deleted`         | omitted (expand-only / deleted objects only) |
| `subscription_item.current_trial`       | null (set only by trial offers, not modelled)|
| `subscription.invoice_settings.issuer.account` | omitted unless `issuer.type` is `account` |
| `subscription.cancellation_details.feedback_option` | null (no feedback options modelled) |
| `subscription.trial_settings.end_behavior.billing_cycle_anchor` | null ("If not set, the   |
|                                         | default is `now`")                           |
| every other `Optional` field            | present, null when unset                     |
"""

from __future__ import annotations

from typing import Any

from stripe_emulator import billing, invoice_builder
from stripe_emulator.customers import merge_metadata
from stripe_emulator.errors import emulator_unsupported, invalid, invalid_integer, missing_param
from stripe_emulator.events import record
from stripe_emulator.lists import in_range, list_object, paginate
from stripe_emulator.params import CREATED, EXPAND, PAGING, anything, b, e, i, lst, m, o, s, u
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, real_now
from stripe_emulator.timeutil import add_interval

KIND = "subscription"
ITEM_KIND = "subscription item"

ITEM = o(
    {
        "price": s(),
        "quantity": i(),
        "metadata": m(),
        "price_data": o(
            {
                "currency": s(required=True),
                "product": s(required=True),
                "recurring": o(
                    {
                        "interval": e("day", "week", "month", "year", required=True),
                        "interval_count": i(),
                    },
                    required=True,
                ),
                "unit_amount": i(),
                "unit_amount_decimal": u(),
                "tax_behavior": e("exclusive", "inclusive", "unspecified"),
            }
        ),
        "billing_thresholds": u(),
        "discounts": u(),
        "plan": u(),
        "tax_rates": u(),
    }
)
# Parameters that change amounts or schedules in ways the engine does not model: refused
# with emulator_unsupported (real Stripe accepts them).
_REFUSED = (
    "application_fee_percent", "billing_schedules", "billing_thresholds", "on_behalf_of",
    "pending_invoice_item_interval", "transfer_data", "trial_from_plan", "trial_settings",
    "default_source",
)  # fmt: skip
# Accepted only when trivially empty / disabled (they change amounts otherwise).
_TRIVIAL = ("default_tax_rates", "discounts", "automatic_tax")
UPDATE = {
    "metadata": m(),
    "default_payment_method": s(),
    "cancel_at_period_end": b(),
    "description": s(),
    "expand": EXPAND,
    "payment_settings": anything(),
    "invoice_settings": anything(),
    "off_session": b(),
    "payment_behavior": e(
        "allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"
    ),
    "proration_behavior": e("always_invoice", "create_prorations", "none"),
    **{k: anything() for k in _TRIVIAL},
    **{k: u() for k in _REFUSED},
    "items": u(),
    "add_invoice_items": u(),
    "billing_cycle_anchor": u(),
    "trial_end": u(),
    "cancel_at": i(),
    "cancellation_details": o({"comment": s(), "feedback": s()}),
    "collection_method": u(),
    "days_until_due": u(),
    "pause_collection": u(),
    "proration_date": u(),
}
CREATE = {
    **{
        k: v
        for k, v in UPDATE.items()
        if k not in ("cancellation_details", "pause_collection", "proration_date")
    },
    "customer": s(required=True),
    "items": lst(ITEM, required=True),
    "collection_method": e("charge_automatically", "send_invoice"),
    "days_until_due": i(),
    "backdate_start_date": i(),
    "currency": s(),
    "trial_period_days": i(),
    "trial_end": s(),
    "billing_cycle_anchor": i(),
    "add_invoice_items": lst(
        o(
            {
                "price": s(),
                "quantity": i(),
                "metadata": m(),
                "price_data": u(),
                "discounts": u(),
                "tax_rates": u(),
                "period": u(),
            }
        )
    ),
    "billing_cycle_anchor_config": u(),
    "billing_mode": u(),
    "customer_account": u(),
}
CANCEL = {
    "invoice_now": b(),
    "prorate": b(),
    "cancellation_details": o({"comment": s(), "feedback": s()}),
    "expand": EXPAND,
}
STATUSES = (
    "active", "all", "canceled", "ended", "incomplete", "incomplete_expired",
    "past_due", "paused", "trialing", "unpaid",
)  # fmt: skip


def _check_pm(store: Store, pm_id: str, cus_id: str) -> None:
    pm = store.by_type["payment_methods"].get(pm_id)
    if pm is None or pm["customer"] != cus_id:
        raise invalid(
            f"The customer does not have a payment method with the ID {pm_id}. The payment "
            "method must be attached to the customer.",
            param="default_payment_method",
            code="resource_missing",
        )


def _prices(store: Store, items: list[dict[str, Any]]) -> list[Obj]:
    if not items:
        raise missing_param("items")
    prices = []
    for n, item in enumerate(items):
        if item.get("price_data") is not None:
            if item.get("price"):
                raise invalid(
                    "You may only specify one of these parameters: price, price_data.",
                    param=f"items[{n}][price_data]",
                )
            prices.append(_inline_price(store, item["price_data"], f"items[{n}][price_data]"))
            continue
        if not item.get("price"):
            raise missing_param(f"items[{n}][price]")
        price = store.get("prices", item["price"], "price", param=f"items[{n}][price]")
        if price["recurring"] is None:
            raise invalid(
                f"The price specified ({price['id']}) is a one_time price; subscriptions need "
                "recurring prices.",
                param=f"items[{n}][price]",
            )
        if not price["active"]:
            raise invalid(f"The price {price['id']} is not active.", param=f"items[{n}][price]")
        if price["recurring"]["usage_type"] == "metered" and item.get("quantity") is not None:
            raise invalid(
                "Quantity should not be specified where usage_type is `metered`. Remove "
                "quantity from `items`.",
                param=f"items[{n}][quantity]",
            )
        prices.append(price)
    first = prices[0]["recurring"]
    for n, price in enumerate(prices):
        rec = price["recurring"]
        if (rec["interval"], rec["interval_count"]) != (first["interval"], first["interval_count"]):
            raise invalid(
                "All prices on a subscription must have the same recurring interval and "
                "interval_count.",
                param=f"items[{n}][price]",
            )
        if price["currency"] != prices[0]["currency"]:
            raise invalid(
                "All prices on a subscription must share one currency.", param=f"items[{n}][price]"
            )
    return prices


def _refuse_nontrivial(p: dict[str, Any]) -> None:
    """Tax rates, discounts and automatic tax change amounts: only empty/disabled passes."""
    for key in ("default_tax_rates", "discounts"):
        if p.get(key) not in (None, "", [], {}):
            raise emulator_unsupported(key)
    tax = p.get("automatic_tax")
    if tax not in (None, ""):
        if not isinstance(tax, dict) or set(tax) - {"enabled", "liability"}:
            raise emulator_unsupported("automatic_tax")
        if tax.get("enabled") != "false" or tax.get("liability"):
            raise emulator_unsupported("automatic_tax")


def _invoice_settings(current: Obj, sent: Any) -> Obj:
    """Echo the text fields of `invoice_settings`; tax ids and issuer stay as they are."""
    if sent in (None, ""):
        return current
    if not isinstance(sent, dict):
        raise invalid("Invalid invoice_settings: expected an object", param="invoice_settings")
    for key in sent:
        if key not in ("custom_fields", "description", "footer"):
            raise emulator_unsupported(f"invoice_settings[{key}]")
    out = dict(current)
    for key, value in sent.items():
        out[key] = value or None
    return out


def _inline_price(store: Store, data: dict[str, Any], param: str) -> Obj:
    """`items[][price_data]`: a new price, inactive as Stripe makes it (facts §5)."""
    store.get("products", data["product"], "product", param=f"{param}[product]")
    if data.get("unit_amount") is None:
        raise missing_param(f"{param}[unit_amount]")
    rec = data["recurring"]
    price: Obj = {
        "id": store.new_id("price"),
        "object": "price",
        "active": False,
        "billing_scheme": "per_unit",
        "created": real_now(),
        "currency": data["currency"].lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": data["product"],
        "recurring": {
            "interval": rec["interval"],
            "interval_count": rec.get("interval_count") or 1,
            "meter": None,
            "trial_period_days": None,
            "usage_type": "licensed",
        },
        "tax_behavior": data.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": data["unit_amount"],
        "unit_amount_decimal": str(data["unit_amount"]),
        "_tiers": None,
    }
    return store.insert("prices", price)


def _trial_end(p: dict[str, Any], now: int) -> int | None:
    """`trial_end` (timestamp or `now`) or `trial_period_days` -> the trial's end, if any."""
    if p.get("trial_end") is not None and p.get("trial_period_days") is not None:
        raise invalid(
            "You may only specify one of these parameters: trial_end, trial_period_days.",
            param="trial_end",
        )
    if p.get("trial_period_days") is not None:
        days = p["trial_period_days"]
        if not 0 <= days <= 730:
            raise invalid("trial_period_days must be between 0 and 730.", param="trial_period_days")
        return now + days * 86400 if days else None
    raw = p.get("trial_end")
    if raw is None or raw == "now":
        return None
    if not raw.lstrip("-").isdigit():
        raise invalid_integer("trial_end", f"Invalid integer: {raw}")
    end = int(raw)
    if end <= now:
        raise invalid(
            "Invalid timestamp: must be an integer Unix timestamp in the future.",
            param="trial_end",
        )
    if end > now + 730 * 86400:
        raise invalid("trial_end can be no more than 730 days in the future.", param="trial_end")
    return end


def _one_offs(store: Store, specs: list[dict[str, Any]]) -> list[tuple[Obj, int]]:
    """`add_invoice_items`: (price, quantity) pairs for the first invoice."""
    out = []
    for n, spec in enumerate(specs):
        if not spec.get("price"):
            raise missing_param(f"add_invoice_items[{n}][price]")
        price = store.get("prices", spec["price"], "price", param=f"add_invoice_items[{n}][price]")
        if price["recurring"] is not None:
            raise invalid(
                f"The price specified ({price['id']}) is a recurring price; add_invoice_items "
                "needs one-time prices.",
                param=f"add_invoice_items[{n}][price]",
            )
        out.append((price, spec.get("quantity") or 1))
    return out


def create(ctx: Ctx) -> Obj:
    """POST /v1/subscriptions."""
    p = ctx.validate(CREATE)
    _refuse_nontrivial(p)
    store = ctx.store
    cus = store.get("customers", p["customer"], "customer", param="customer")
    prices = _prices(store, p["items"])
    if p.get("default_payment_method"):
        _check_pm(store, p["default_payment_method"], cus["id"])
    now = store.now_for(cus)
    start = p.get("backdate_start_date") or now
    if start > now or start < 0:
        raise invalid("backdate_start_date must be in the past.", param="backdate_start_date")
    method = p.get("collection_method") or "charge_automatically"
    rec = prices[0]["recurring"]
    trial_end = _trial_end(p, now)
    anchor = p.get("billing_cycle_anchor")
    licensed = any(pr["recurring"]["usage_type"] == "licensed" for pr in prices)
    if anchor is not None:
        if trial_end is not None:
            raise emulator_unsupported("billing_cycle_anchor")
        if anchor <= start or anchor > add_interval(start, rec["interval"], rec["interval_count"]):
            raise invalid(
                "billing_cycle_anchor cannot be later than next natural billing date "
                "for plan, nor in the past.",
                param="billing_cycle_anchor",
            )
        if licensed and p.get("proration_behavior") != "none":
            raise emulator_unsupported("billing_cycle_anchor")
    cancel_at = p.get("cancel_at")
    if cancel_at is not None and cancel_at <= now:
        raise invalid("cancel_at must be in the future.", param="cancel_at")
    one_offs = _one_offs(store, p.get("add_invoice_items") or [])
    stub_end = trial_end or anchor
    sub_id = store.new_id("sub")
    sub: Obj = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": stub_end or start,
        "billing_cycle_anchor_config": None,
        "billing_mode": {
            "flexible": {"proration_discounts": "included"},
            "type": "flexible",
        },
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": cancel_at,
        "cancel_at_period_end": bool(p.get("cancel_at_period_end")),
        "canceled_at": None,
        "cancellation_details": {
            "comment": None,
            "feedback": None,
            "feedback_option": None,
            "reason": None,
        },
        "collection_method": method,
        "created": now,
        "currency": prices[0]["currency"],
        "customer": cus["id"],
        "customer_account": None,
        "days_until_due": (p.get("days_until_due") or 30) if method == "send_invoice" else None,
        "default_payment_method": p.get("default_payment_method"),
        "default_source": None,
        "default_tax_rates": [],
        "description": p.get("description"),
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": merge_metadata({}, p.get("metadata") or {}),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": _payment_settings(p.get("payment_settings")),
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "presentment_details": None,
        "schedule": None,
        "start_date": start,
        "status": "trialing" if trial_end else "active",
        "status_details": None,
        "test_clock": cus.get("test_clock"),
        "transfer_data": None,
        "trial_end": trial_end,
        "trial_settings": {
            "end_behavior": {
                "billing_cycle_anchor": None,
                "missing_payment_method": "create_invoice",
            }
        },
        "trial_start": now if trial_end else None,
        "_anchor": stub_end or start,
        "_interval": rec["interval"],
        "_count": rec["interval_count"],
        "_k": -1 if stub_end else 0,
        "_stub": (start, stub_end) if stub_end else None,
        "_trial": bool(trial_end),
        "_pending": [],
    }
    sub["invoice_settings"] = _invoice_settings(sub["invoice_settings"], p.get("invoice_settings"))
    period = billing.period_bounds(sub, sub["_k"])
    if cancel_at is not None:
        billing.check_cancel_at(sub, cancel_at, p.get("proration_behavior"), licensed)
    items = [
        _item(store, sub_id, price, spec, now, period)
        for price, spec in zip(prices, p["items"], strict=True)
    ]
    sub["items"] = items_list(sub_id, items)
    store.insert("subscriptions", sub)
    for item in items:
        store.insert("subscription_items", item)
    _first_invoice(store, sub, now, period, one_offs)
    # after the first invoice, so the payload carries latest_invoice and the status it
    # settled on (incomplete when the first payment fails), as Stripe's does
    record(store, "customer.subscription.created", sub, now)
    billing.run_subscription(store, sub, now)
    return sub


def _item(
    store: Store, sub_id: str, price: Obj, spec: dict[str, Any], now: int, period: tuple[int, int]
) -> Obj:
    rec = price["recurring"]
    metered = rec["usage_type"] == "metered"
    item: Obj = {
        "id": store.new_id("si"),
        "object": "subscription_item",
        "billed_until": None,
        "billing_thresholds": None,
        "created": now,
        "current_period_end": period[1],
        "current_period_start": period[0],
        "current_trial": None,
        "discounts": [],
        "metadata": merge_metadata({}, spec.get("metadata") or {}),
        "plan": {
            "id": price["id"],
            "object": "plan",
            "active": price["active"],
            "amount": price["unit_amount"],
            "amount_decimal": price["unit_amount_decimal"],
            "billing_scheme": price["billing_scheme"],
            "created": price["created"],
            "currency": price["currency"],
            "interval": rec["interval"],
            "interval_count": rec["interval_count"],
            "livemode": False,
            "metadata": dict(price["metadata"]),
            "meter": rec["meter"],
            "nickname": price["nickname"],
            "product": price["product"],
            "tiers_mode": price["tiers_mode"],
            "transform_usage": None,
            "trial_period_days": None,
            "usage_type": rec["usage_type"],
        },
        "price": price,
        "subscription": sub_id,
        "tax_rates": [],
    }
    if not metered:
        item["quantity"] = spec.get("quantity") or 1
    return item


def items_list(sub_id: str, items: list[Obj]) -> Obj:
    """The `items` list embedded in a subscription."""
    return list_object(items, f"/v1/subscription_items?subscription={sub_id}")


def _first_invoice(
    store: Store, sub: Obj, now: int, period: tuple[int, int], one_offs: list[tuple[Obj, int]]
) -> None:
    inv = invoice_builder.new_invoice(store, sub, "subscription_create", now, (now, now))
    if sub["_trial"]:
        lines = invoice_builder.trial_lines(store, sub, inv["id"], period)
    elif sub["_stub"] is not None:
        # billing_cycle_anchor with proration_behavior=none: the stub is not charged up
        # front; metered items show a zero line, licensed ones bill at the anchor.
        lines = [
            line
            for line in invoice_builder.build_lines(store, sub, inv["id"], None, period)
            if line["quantity"] == 0
        ]
    else:
        lines = invoice_builder.build_lines(store, sub, inv["id"], None, period)
    lines += [
        invoice_builder.one_off_line(store, sub, inv["id"], price, qty, now)
        for price, qty in one_offs
    ]
    invoice_builder.set_lines(inv, lines)
    billing.created(store, inv, now)
    sub["latest_invoice"] = inv["id"]
    if sub["collection_method"] == "send_invoice" and inv["amount_due"] > 0:
        inv["automatically_finalizes_at"] = now + billing.FINALIZE_DELAY_S
        sub["_pending"].append(inv["id"])
        return
    billing.finalize(store, inv, now)
    if inv["status"] == "open" and billing.charge(store, inv, now) is not None:
        sub["status"] = "incomplete"


def _payment_settings(sent: dict[str, Any] | None) -> Obj:
    """Echo `payment_settings` as Stripe shapes it (no effect on billing here)."""
    sent = sent or {}
    return {
        "payment_method_options": sent.get("payment_method_options"),
        "payment_method_types": sent.get("payment_method_types"),
        "save_default_payment_method": sent.get("save_default_payment_method") or "off",
    }


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/subscriptions/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("subscriptions", ctx.args[0], KIND)


def update(ctx: Ctx) -> Obj:
    """POST /v1/subscriptions/{id}: metadata, default_payment_method, cancel_at_period_end."""
    p = ctx.validate(UPDATE)
    _refuse_nontrivial(p)
    store = ctx.store
    sub = store.get("subscriptions", ctx.args[0], KIND)
    before = billing.snapshot(sub)
    _apply_update(store, sub, p)
    at = store.now_for(store.by_type["customers"].get(sub["customer"]))
    billing.sub_changed(store, sub, before, at)
    return sub


def _apply_update(store: Store, sub: Obj, p: dict[str, Any]) -> None:
    if "payment_settings" in p:
        sub["payment_settings"] = _payment_settings(p["payment_settings"] or None)
    if "invoice_settings" in p:
        sub["invoice_settings"] = _invoice_settings(sub["invoice_settings"], p["invoice_settings"])
    if p.get("cancellation_details"):
        for key in ("comment", "feedback"):
            if key in p["cancellation_details"]:
                sub["cancellation_details"][key] = p["cancellation_details"][key]
    if p.get("default_payment_method"):
        _check_pm(store, p["default_payment_method"], sub["customer"])
    if "default_payment_method" in p:
        sub["default_payment_method"] = p["default_payment_method"]
    if "metadata" in p:
        sub["metadata"] = merge_metadata(sub["metadata"], p["metadata"])
    if "description" in p:
        sub["description"] = p["description"]
    if p.get("cancel_at_period_end") is not None:
        sub["cancel_at_period_end"] = p["cancel_at_period_end"]
    if "cancel_at" in p and sub["status"] != "canceled":
        cancel_at = p["cancel_at"]
        if cancel_at is not None:
            now = store.now_for(store.by_type["customers"].get(sub["customer"]))
            if cancel_at <= now:
                raise invalid("cancel_at must be in the future.", param="cancel_at")
            licensed = not all(invoice_builder.is_metered(it) for it in sub["items"]["data"])
            billing.check_cancel_at(sub, cancel_at, p.get("proration_behavior"), licensed)
        sub["cancel_at"] = cancel_at
        sub["_next_due"] = 0


def cancel(ctx: Ctx) -> Obj:
    """DELETE /v1/subscriptions/{id}: canceled now, no further periods."""
    p = ctx.validate(CANCEL)
    store = ctx.store
    sub = store.get("subscriptions", ctx.args[0], KIND)
    if sub["status"] == "canceled":
        raise invalid(
            f"A canceled subscription can only update its cancellation_details and metadata: "
            f"{sub['id']}",
            param="id",
            code="invalid_canceled_subscription_fields",
        )
    now = store.now_for(store.by_type["customers"].get(sub["customer"]))
    details = p.get("cancellation_details") or {}
    sub["status"] = "canceled"
    sub["canceled_at"] = now
    sub["ended_at"] = now
    sub["cancellation_details"] = {
        "comment": details.get("comment"),
        "feedback": details.get("feedback"),
        "feedback_option": None,
        "reason": "cancellation_requested",
    }
    record(store, "customer.subscription.deleted", sub, now)
    return sub


def list_(ctx: Ctx) -> Obj:
    """GET /v1/subscriptions: clock subscriptions only with customer= or test_clock=."""
    p = ctx.validate(
        {
            **PAGING,
            "customer": s(),
            "test_clock": s(),
            "price": s(),
            "plan": s(),
            "status": e(*STATUSES),
            "created": CREATED,
            "collection_method": e("charge_automatically", "send_invoice"),
            "automatic_tax": u(),
            "current_period_end": u(),
            "current_period_start": u(),
            "customer_account": u(),
        }
    )
    store = ctx.store
    rows = list(store.all("subscriptions"))
    if p.get("customer"):
        rows = [r for r in rows if r["customer"] == p["customer"]]
    elif p.get("test_clock"):
        rows = [r for r in rows if r["test_clock"] == p["test_clock"]]
    else:
        rows = [r for r in rows if not r["test_clock"]]
    status = p.get("status")
    if status == "ended":
        rows = [r for r in rows if r["status"] in ("canceled", "incomplete_expired")]
    elif status and status != "all":
        rows = [r for r in rows if r["status"] == status]
    elif status is None:
        rows = [r for r in rows if r["status"] != "canceled"]
    for key in ("price", "plan"):
        if p.get(key):
            rows = [
                r for r in rows if any(it["price"]["id"] == p[key] for it in r["items"]["data"])
            ]
    if p.get("collection_method"):
        rows = [r for r in rows if r["collection_method"] == p["collection_method"]]
    rows = [r for r in rows if in_range(r["created"], p.get("created"))]
    return paginate(rows, p, "/v1/subscriptions", kind=KIND)


def retrieve_item(ctx: Ctx) -> Obj:
    """GET /v1/subscription_items/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("subscription_items", ctx.args[0], ITEM_KIND)


def list_items(ctx: Ctx) -> Obj:
    """GET /v1/subscription_items?subscription=... (required)."""
    p = ctx.validate({**PAGING, "subscription": s(required=True)})
    sub = ctx.store.get("subscriptions", p["subscription"], KIND, param="subscription")
    rows = sub["items"]["data"]
    return paginate(rows, p, "/v1/subscription_items", kind=ITEM_KIND)


def legacy_usage_record(ctx: Ctx) -> Obj:
    """POST /v1/subscription_items/{id}/usage_records: gone since basil (facts §4).

    Items on meter-backed prices get Stripe's pointer to meter events ([issue] in §4.2).
    """
    item = ctx.store.get("subscription_items", ctx.args[0], ITEM_KIND)
    raise invalid(
        f"Cannot create a usage record for `{item['id']}` because it is not on the legacy "
        "metered billing system. Call /v1/billing/meter_events instead.",
        param="id",
    )


def register(router: Router) -> None:
    """Mount subscription and subscription item routes."""
    router.add("POST", "/v1/subscriptions", create)
    router.add("GET", "/v1/subscriptions", list_)
    router.add("GET", "/v1/subscriptions/{id}", retrieve)
    router.add("POST", "/v1/subscriptions/{id}", update)
    router.add("DELETE", "/v1/subscriptions/{id}", cancel)
    router.add("GET", "/v1/subscription_items", list_items)
    router.add("GET", "/v1/subscription_items/{id}", retrieve_item)
    router.add("POST", "/v1/subscription_items/{id}/usage_records", legacy_usage_record)
