"""Customers and payment methods (facts §2.5, §6.5).

Customers on a test clock are hidden from unfiltered lists. Payment methods come from
test templates (`pm_card_visa`, `pm_card_chargeCustomerFail`, ...): each attach makes a
fresh `pm_...`; the template id itself never exists as an object.
"""

from __future__ import annotations

from typing import Any

from stripe_emulator import clocks
from stripe_emulator.errors import invalid, not_found
from stripe_emulator.lists import paginate
from stripe_emulator.params import EXPAND, PAGING, RANGE, e, m, o, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, random_token, real_now

KIND = "customer"
PM_KIND = "PaymentMethod"
# template id -> (brand, last4, every charge declines)
TEMPLATES: dict[str, tuple[str, str, bool]] = {
    "pm_card_visa": ("visa", "4242", False),
    "pm_card_mastercard": ("mastercard", "4444", False),
    "pm_card_amex": ("amex", "8431", False),
    # [inferred] facts §6.5: attaches fine, every charge fails (like 4000000000000341).
    "pm_card_chargeCustomerFail": ("visa", "0341", True),
}

INVOICE_SETTINGS = o({"default_payment_method": s(), "footer": s()})
UPDATE = {
    "email": s(),
    "name": s(),
    "description": s(),
    "phone": s(),
    "metadata": m(),
    "invoice_settings": INVOICE_SETTINGS,
    "expand": EXPAND,
}
CREATE = {**UPDATE, "test_clock": s(), "payment_method": s()}
LIST = {**PAGING, "email": s(), "test_clock": s(), "created": RANGE}


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's metadata update: `metadata=""` clears, `metadata[k]=""` removes one key."""
    if update is None:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def create(ctx: Ctx) -> Obj:
    """POST /v1/customers."""
    p = ctx.validate(CREATE)
    store = ctx.store
    clock_id = p.get("test_clock")
    if clock_id:
        clock = store.get("test_clocks", clock_id, "test_clock", param="test_clock")
        clocks.check_room(store, clock, "test_clock")
    cus: Obj = {
        "id": store.new_id("cus"),
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": real_now(),
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": p.get("description"),
        "discount": None,
        "email": p.get("email"),
        "invoice_prefix": random_token(8).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": merge_metadata({}, p.get("metadata") or {}),
        "name": p.get("name"),
        "next_invoice_sequence": 1,
        "phone": p.get("phone"),
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": clock_id or None,
    }
    pm_id = p.get("payment_method")
    pm = attach_to(store, pm_id, cus, "payment_method") if pm_id else None
    _apply_invoice_settings(store, cus, p.get("invoice_settings"))
    store.insert("customers", cus)
    if pm is not None:
        store.insert("payment_methods", pm)
    return cus


def _apply_invoice_settings(store: Store, cus: Obj, settings: dict[str, Any] | None) -> None:
    if not settings:
        return
    if "default_payment_method" in settings:
        pm_id = settings["default_payment_method"]
        if pm_id is not None:
            pm = store.by_type["payment_methods"].get(pm_id)
            if pm is None or pm["customer"] != cus["id"]:
                raise invalid(
                    f"The customer does not have a payment method with the ID {pm_id}. The "
                    "payment method must be attached to the customer.",
                    param="invoice_settings[default_payment_method]",
                    code="resource_missing",
                )
        cus["invoice_settings"]["default_payment_method"] = pm_id
    if "footer" in settings:
        cus["invoice_settings"]["footer"] = settings["footer"]


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/customers/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("customers", ctx.args[0], KIND)


def update(ctx: Ctx) -> Obj:
    """POST /v1/customers/{id}: validated fully before anything changes."""
    p = ctx.validate(UPDATE)
    store = ctx.store
    cus = store.get("customers", ctx.args[0], KIND)
    staged = dict(cus)
    staged["invoice_settings"] = dict(cus["invoice_settings"])
    for key in ("email", "name", "description", "phone"):
        if key in p:
            staged[key] = p[key]
    if "metadata" in p:
        staged["metadata"] = merge_metadata(cus["metadata"], p["metadata"])
    _apply_invoice_settings(store, staged, p.get("invoice_settings"))
    cus.update(staged)
    return cus


def list_(ctx: Ctx) -> Obj:
    """GET /v1/customers: clock customers only with `test_clock=` (facts §1.8)."""
    p = ctx.validate(LIST)
    clock_id = p.get("test_clock")
    rows = [c for c in ctx.store.all("customers") if c.get("test_clock") == clock_id]
    if p.get("email"):
        rows = [c for c in rows if c.get("email") == p["email"]]
    rows = filter_created(rows, p.get("created"))
    return paginate(rows, p, "/v1/customers", kind=KIND)


def filter_created(rows: list[Obj], rng: dict[str, int] | None) -> list[Obj]:
    """Apply a `created[gt|gte|lt|lte]` filter."""
    if not rng:
        return rows
    checks = {
        "gt": lambda v, b: v > b,
        "gte": lambda v, b: v >= b,
        "lt": lambda v, b: v < b,
        "lte": lambda v, b: v <= b,
    }
    return [r for r in rows if all(checks[k](r["created"], v) for k, v in rng.items())]


def delete(ctx: Ctx) -> Obj:
    """DELETE /v1/customers/{id}: with its subscriptions and payment methods."""
    ctx.validate({})
    cus = ctx.store.get("customers", ctx.args[0], KIND)
    clocks.delete_customer_tree(ctx.store, cus["id"])
    return {"id": cus["id"], "object": "customer", "deleted": True}


def attach_to(store: Store, pm_id: str, cus: Obj, param: str) -> Obj | None:
    """Resolve `pm_id` for `cus`: a template makes a new (unsaved) PM; a stored PM is bound."""
    template = TEMPLATES.get(pm_id)
    if template is not None:
        return _from_template(store, template, cus["id"])
    pm = store.by_type["payment_methods"].get(pm_id)
    if pm is None:
        raise not_found(PM_KIND, pm_id, param=param)
    if pm["customer"] not in (None, cus["id"]):
        raise invalid(
            "This PaymentMethod was previously used without being attached to a Customer "
            "or was detached from a Customer, and may not be used again.",
            param=param,
        )
    pm["customer"] = cus["id"]
    return None


def _from_template(store: Store, template: tuple[str, str, bool], cus_id: str | None) -> Obj:
    brand, last4, fails = template
    return {
        "id": store.new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
            "email": None,
            "name": None,
            "phone": None,
        },
        "card": {
            "brand": brand,
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": random_token(16),
            "funding": "credit",
            "last4": last4,
        },
        "created": real_now(),
        "customer": cus_id,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_fails": fails,
    }


def attach(ctx: Ctx) -> Obj:
    """POST /v1/payment_methods/{id}/attach."""
    p = ctx.validate({"customer": s(required=True), "expand": EXPAND})
    store = ctx.store
    cus = store.get("customers", p["customer"], KIND, param="customer")
    pm_id = ctx.args[0]
    created = attach_to(store, pm_id, cus, "payment_method")
    if created is not None:
        return store.insert("payment_methods", created)
    return store.by_type["payment_methods"][pm_id]


def detach(ctx: Ctx) -> Obj:
    """POST /v1/payment_methods/{id}/detach."""
    ctx.validate({"expand": EXPAND})
    pm = ctx.store.get("payment_methods", ctx.args[0], PM_KIND)
    if pm["customer"] is None:
        raise invalid(f"The payment method {pm['id']} is not attached to a customer.")
    cus = ctx.store.by_type["customers"].get(pm["customer"])
    if cus is not None and cus["invoice_settings"]["default_payment_method"] == pm["id"]:
        cus["invoice_settings"]["default_payment_method"] = None
    pm["customer"] = None
    return pm


def retrieve_pm(ctx: Ctx) -> Obj:
    """GET /v1/payment_methods/{id} (template ids are not objects: 404)."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("payment_methods", ctx.args[0], PM_KIND)


def list_pms(ctx: Ctx) -> Obj:
    """GET /v1/payment_methods?customer=..."""
    p = ctx.validate({**PAGING, "customer": s(), "type": e("card")})
    rows = [pm for pm in ctx.store.all("payment_methods") if pm["customer"] is not None]
    if p.get("customer"):
        rows = [pm for pm in rows if pm["customer"] == p["customer"]]
    return paginate(rows, p, "/v1/payment_methods", kind=PM_KIND)


def list_customer_pms(ctx: Ctx) -> Obj:
    """GET /v1/customers/{id}/payment_methods."""
    p = ctx.validate({**PAGING, "type": e("card")})
    cus = ctx.store.get("customers", ctx.args[0], KIND)
    rows = [pm for pm in ctx.store.all("payment_methods") if pm["customer"] == cus["id"]]
    return paginate(rows, p, f"/v1/customers/{cus['id']}/payment_methods", kind=PM_KIND)


def register(router: Router) -> None:
    """Mount customer and payment method routes."""
    router.add("POST", "/v1/customers", create)
    router.add("GET", "/v1/customers", list_)
    router.add("GET", "/v1/customers/{id}", retrieve)
    router.add("POST", "/v1/customers/{id}", update)
    router.add("DELETE", "/v1/customers/{id}", delete)
    router.add("GET", "/v1/customers/{id}/payment_methods", list_customer_pms)
    router.add("GET", "/v1/payment_methods", list_pms)
    router.add("GET", "/v1/payment_methods/{id}", retrieve_pm)
    router.add("POST", "/v1/payment_methods/{id}/attach", attach)
    router.add("POST", "/v1/payment_methods/{id}/detach", detach)
