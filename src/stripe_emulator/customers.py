"""Customers and payment methods (facts §2.5, §6.5).

Customers on a test clock are hidden from unfiltered lists. Payment methods come from
test templates (`pm_card_visa`, `pm_card_chargeCustomerFail`, ...): each attach makes a
fresh `pm_...`; the template id itself never exists as an object.

Parameters: every create/update/list parameter of the SDK's `CustomerCreateParams`,
`CustomerUpdateParams`, `CustomerListParams` and the payment method attach/detach/list
params is declared. Contact and presentation fields (address, shipping, names, locales,
invoice prefix and sequence, invoice settings, tax_exempt) are stored and echoed; those
whose effect the emulator does not model are `emulator_unsupported` (`balance` other
than 0 would change invoice totals; `cash_balance`, `source`/`default_source`, `tax`,
`tax_id_data` and the payment methods' `customer_account` need objects the emulator does
not keep). Retrieving a deleted customer answers 404 here; Stripe answers the deleted
object (`Customer | DeletedCustomer`), which would need a tombstone in the store.

Omitted vs null (the SDK's annotations are the schema; "present" = sent, maybe null).
Sources: the Customer and PaymentMethod objects in Stripe's API reference
(docs.stripe.com/api/customers/object, /api/payment_methods/object) and stripe-node's
generated types, whose optional (`?`) fields are the ones Stripe may leave out:

| field                                        | rule                                       |
|----------------------------------------------|--------------------------------------------|
| `customer.business_name`, `individual_name`  | omitted until set (not nullable)           |
| `customer.cash_balance`, `sources`, `tax`,   | omitted: includable, only sent for         |
| `invoice_credit_balance`, `subscriptions`,   | `expand[]` (there: emulator_unsupported)   |
| `tax_ids`                                    |                                            |
| `customer.deleted`                           | omitted; only `{id, object, deleted: true}`|
| `customer.customer_account`, `discount`      | present, null ([inferred] for v1 customers)|
| `payment_method.<type other than card>`      | omitted (one sub-object, named by `type`)  |
| `payment_method.radar_options`               | omitted (only with Radar sessions)         |
| `payment_method.customer_account`            | present, null                              |
| `card.description`, `iin`, `issuer`          | omitted (issuing / preview-only fields)    |
| `card.checks`, `networks`, `display_brand`,  | present, filled as for a test card         |
| `three_d_secure_usage`, `regulated_status`   |                                            |
| `card.generated_from`, `card.wallet`         | present, null (no card-present / wallet)   |
| every other `Optional` field                 | present, null when unset                   |
"""

from __future__ import annotations

import re
from typing import Any

from stripe_emulator import clocks
from stripe_emulator.errors import emulator_unsupported, invalid, not_found
from stripe_emulator.lists import in_range, paginate
from stripe_emulator.params import CREATED, EXPAND, PAGING, Spec, b, e, i, lst, m, o, s, u
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
_PREFIX = re.compile(r"^[A-Z0-9]{1,12}$")
# Sent only when expanded (customers.py docstring); the emulator keeps none of them.
INCLUDABLE = (
    "cash_balance", "invoice_credit_balance", "sources", "subscriptions", "tax", "tax_ids"
)  # fmt: skip

ADDRESS = o(
    {"city": s(), "country": s(), "line1": s(), "line2": s(), "postal_code": s(), "state": s()}
)
SHIPPING = o({"address": o(ADDRESS.fields, required=True), "name": s(required=True), "phone": s()})
INVOICE_SETTINGS = o(
    {
        "custom_fields": lst(o({"name": s(required=True), "value": s(required=True)})),
        "default_payment_method": s(),
        "footer": s(),
        "rendering_options": o(
            {"amount_tax_display": e("exclude_tax", "include_inclusive_tax"), "template": s()}
        ),
    }
)
UPDATE: dict[str, Spec] = {
    "email": s(),
    "name": s(),
    "description": s(),
    "phone": s(),
    "metadata": m(),
    "invoice_settings": INVOICE_SETTINGS,
    "expand": EXPAND,
    "address": ADDRESS,
    "shipping": SHIPPING,
    "tax_exempt": e("exempt", "none", "reverse"),
    "preferred_locales": lst(s()),
    "invoice_prefix": s(),
    "next_invoice_sequence": i(),
    "business_name": s(),
    "individual_name": s(),
    "balance": i(),
    "validate": b(),
    "cash_balance": u(),
    "tax": u(),
    "source": u(),
    "default_source": u(),
}
CREATE: dict[str, Spec] = {
    **{k: v for k, v in UPDATE.items() if k != "default_source"},
    "test_clock": s(),
    "payment_method": s(),
    "tax_id_data": u(),
}
LIST: dict[str, Spec] = {**PAGING, "email": s(), "test_clock": s(), "created": CREATED}
ATTACH: dict[str, Spec] = {"customer": s(required=True), "expand": EXPAND, "customer_account": u()}
RETRIEVE: dict[str, Spec] = {"expand": EXPAND}
_ONLY_TOP_LEVEL = ("customer", "customer_account")
PM_LIST: dict[str, Spec] = {
    **PAGING,
    "customer": s(),
    "type": s(),
    "allow_redisplay": e("always", "limited", "unspecified"),
    "customer_account": u(),
}
CUSTOMER_PM_LIST = {k: v for k, v in PM_LIST.items() if k not in _ONLY_TOP_LEVEL}


def refuse_includable(ctx: Ctx, names: tuple[str, ...]) -> None:
    """`expand[]` of an includable field the emulator does not build: emulator_unsupported
    (checked on the raw request, before the generic expand check would call it unknown)."""
    raw = ctx.raw.get("expand")
    paths = raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []
    for path in paths:
        if isinstance(path, str) and path.removeprefix("data.").split(".")[0] in names:
            raise emulator_unsupported("expand")


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


def _check(p: dict[str, Any]) -> None:
    """Refusals shared by create and update (before anything changes)."""
    if p.get("balance"):
        # A non-zero balance is applied to the next invoices; the engine does not do that.
        raise emulator_unsupported("balance")
    prefix = p.get("invoice_prefix")
    if prefix is not None and not _PREFIX.match(prefix):
        raise invalid(
            "Invoice prefix must be 1-12 uppercase letters or numbers.", param="invoice_prefix"
        )
    seq = p.get("next_invoice_sequence")
    if seq is not None and seq < 1:
        raise invalid(
            "This value must be greater than or equal to 1.", param="next_invoice_sequence"
        )


def _address(value: dict[str, Any] | None) -> Obj | None:
    if value is None:
        return None
    return {k: value.get(k) for k in ("city", "country", "line1", "line2", "postal_code", "state")}


def _shipping(value: dict[str, Any] | None) -> Obj | None:
    if value is None:
        return None
    return {
        "address": _address(value.get("address") or {}),
        "carrier": None,
        "name": value["name"],
        "phone": value.get("phone"),
        "tracking_number": None,
    }


def _apply(store: Store, cus: Obj, p: dict[str, Any]) -> None:
    """Set every echoed field present in `p` on `cus` (a staged copy on update)."""
    for key in ("email", "name", "description", "phone", "tax_exempt"):
        if key in p:
            cus[key] = p[key]
    if "tax_exempt" in p and p["tax_exempt"] is None:
        cus["tax_exempt"] = "none"
    if "address" in p:
        cus["address"] = _address(p["address"])
    if "shipping" in p:
        cus["shipping"] = _shipping(p["shipping"])
    if "preferred_locales" in p:
        cus["preferred_locales"] = list(p["preferred_locales"] or [])
    if p.get("invoice_prefix") is not None:
        cus["invoice_prefix"] = p["invoice_prefix"]
    if p.get("next_invoice_sequence") is not None:
        cus["next_invoice_sequence"] = p["next_invoice_sequence"]
    for key in ("business_name", "individual_name"):
        if key in p:
            # Not nullable in Stripe's spec: an empty string removes the field.
            if p[key] is None:
                cus.pop(key, None)
            else:
                cus[key] = p[key]
    if "metadata" in p:
        cus["metadata"] = merge_metadata(cus["metadata"], p["metadata"])
    _apply_invoice_settings(store, cus, p.get("invoice_settings"))


def create(ctx: Ctx) -> Obj:
    """POST /v1/customers."""
    refuse_includable(ctx, INCLUDABLE)
    p = ctx.validate(CREATE)
    _check(p)
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
        "customer_account": None,
        "default_source": None,
        "delinquent": False,
        "description": None,
        "discount": None,
        "email": None,
        "invoice_prefix": random_token(8).upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": {},
        "name": None,
        "next_invoice_sequence": 1,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": clock_id or None,
    }
    pm_id = p.get("payment_method")
    pm = attach_to(store, pm_id, cus, "payment_method") if pm_id else None
    _apply(store, cus, p)
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
    if "custom_fields" in settings:
        fields = settings["custom_fields"]
        cus["invoice_settings"]["custom_fields"] = (
            [{"name": f["name"], "value": f["value"]} for f in fields] if fields else None
        )
    if "rendering_options" in settings:
        opts = settings["rendering_options"]
        cus["invoice_settings"]["rendering_options"] = (
            None
            if opts is None
            else {
                "amount_tax_display": opts.get("amount_tax_display"),
                "template": opts.get("template"),
            }
        )


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/customers/{id}."""
    refuse_includable(ctx, INCLUDABLE)
    ctx.validate(RETRIEVE)
    return ctx.store.get("customers", ctx.args[0], KIND)


def update(ctx: Ctx) -> Obj:
    """POST /v1/customers/{id}: validated fully before anything changes."""
    refuse_includable(ctx, INCLUDABLE)
    p = ctx.validate(UPDATE)
    _check(p)
    store = ctx.store
    cus = store.get("customers", ctx.args[0], KIND)
    staged = dict(cus)
    staged["invoice_settings"] = dict(cus["invoice_settings"])
    _apply(store, staged, p)
    cus.clear()
    cus.update(staged)
    return cus


def list_(ctx: Ctx) -> Obj:
    """GET /v1/customers: clock customers only with `test_clock=` (facts §1.8)."""
    refuse_includable(ctx, INCLUDABLE)
    p = ctx.validate(LIST)
    clock_id = p.get("test_clock")
    rows = [c for c in ctx.store.all("customers") if c.get("test_clock") == clock_id]
    if p.get("email"):
        rows = [c for c in rows if c.get("email") == p["email"]]
    rows = [c for c in rows if in_range(c["created"], p.get("created"))]
    return paginate(rows, p, "/v1/customers", kind=KIND)


def filter_created(rows: list[Obj], rng: dict[str, int] | None) -> list[Obj]:
    """Apply a `created` filter (exact or `gt`/`gte`/`lt`/`lte`)."""
    return [r for r in rows if in_range(r["created"], rng)]


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
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "unchecked",
            },
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": random_token(16),
            "funding": "credit",
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": real_now(),
        "customer": cus_id,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_fails": fails,
    }


def attach(ctx: Ctx) -> Obj:
    """POST /v1/payment_methods/{id}/attach."""
    p = ctx.validate(ATTACH)
    store = ctx.store
    cus = store.get("customers", p["customer"], KIND, param="customer")
    pm_id = ctx.args[0]
    created = attach_to(store, pm_id, cus, "payment_method")
    if created is not None:
        return store.insert("payment_methods", created)
    return store.by_type["payment_methods"][pm_id]


def detach(ctx: Ctx) -> Obj:
    """POST /v1/payment_methods/{id}/detach."""
    ctx.validate(RETRIEVE)
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
    ctx.validate(RETRIEVE)
    return ctx.store.get("payment_methods", ctx.args[0], PM_KIND)


def _pm_filters(rows: list[Obj], p: dict[str, Any]) -> list[Obj]:
    if p.get("type") is not None:
        rows = [pm for pm in rows if pm["type"] == p["type"]]
    if p.get("allow_redisplay") is not None:
        rows = [pm for pm in rows if pm["allow_redisplay"] == p["allow_redisplay"]]
    return rows


def list_pms(ctx: Ctx) -> Obj:
    """GET /v1/payment_methods?customer=... (only attached ones: templates are not objects)."""
    p = ctx.validate(PM_LIST)
    rows = [pm for pm in ctx.store.all("payment_methods") if pm["customer"] is not None]
    if p.get("customer"):
        rows = [pm for pm in rows if pm["customer"] == p["customer"]]
    return paginate(_pm_filters(rows, p), p, "/v1/payment_methods", kind=PM_KIND)


def list_customer_pms(ctx: Ctx) -> Obj:
    """GET /v1/customers/{id}/payment_methods."""
    p = ctx.validate(CUSTOMER_PM_LIST)
    cus = ctx.store.get("customers", ctx.args[0], KIND)
    rows = [pm for pm in ctx.store.all("payment_methods") if pm["customer"] == cus["id"]]
    return paginate(
        _pm_filters(rows, p), p, f"/v1/customers/{cus['id']}/payment_methods", kind=PM_KIND
    )


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
