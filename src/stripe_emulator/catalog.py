"""Products and prices (facts §3.7).

Since `2025-03-31.basil` a metered price must name a meter, and every per-unit price
needs `unit_amount` or `unit_amount_decimal` (tiered prices need `tiers`).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from stripe_emulator.customers import filter_created, merge_metadata
from stripe_emulator.errors import invalid, missing_param
from stripe_emulator.lists import paginate
from stripe_emulator.params import EXPAND, PAGING, RANGE, b, d, e, i, lst, m, o, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, real_now

PRODUCT = "product"
PRICE = "price"
_CURRENCY = re.compile(r"^[a-z]{3}$")

PRODUCT_UPDATE = {
    "name": s(),
    "active": b(),
    "description": s(),
    "metadata": m(),
    "unit_label": s(),
    "statement_descriptor": s(),
    "expand": EXPAND,
}
PRODUCT_CREATE = {**PRODUCT_UPDATE, "name": s(required=True), "id": s()}
TIER = o(
    {
        "up_to": s(required=True),
        "unit_amount": i(),
        "unit_amount_decimal": d(),
        "flat_amount": i(),
        "flat_amount_decimal": d(),
    }
)
PRICE_UPDATE = {
    "nickname": s(),
    "active": b(),
    "metadata": m(),
    "lookup_key": s(),
    "expand": EXPAND,
}
PRICE_CREATE = {
    **PRICE_UPDATE,
    "currency": s(required=True),
    "product": s(),
    "product_data": o({"name": s(required=True), "metadata": m(), "unit_label": s()}),
    "unit_amount": i(),
    "unit_amount_decimal": d(),
    "billing_scheme": e("per_unit", "tiered"),
    "tiers": lst(TIER),
    "tiers_mode": e("graduated", "volume"),
    "recurring": o(
        {
            "interval": e("day", "week", "month", "year", required=True),
            "interval_count": i(),
            "usage_type": e("licensed", "metered"),
            "meter": s(),
            "trial_period_days": i(),
        }
    ),
    "transform_quantity": o(
        {"divide_by": i(required=True), "round": e("up", "down", required=True)}
    ),
    "tax_behavior": e("exclusive", "inclusive", "unspecified"),
}


def _product(store: Store, obj_id: str | None, p: dict[str, Any]) -> Obj:
    now = real_now()
    return {
        "id": obj_id or store.new_id("prod"),
        "object": "product",
        "active": p.get("active", True) is not False,
        "created": now,
        "default_price": None,
        "description": p.get("description"),
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": merge_metadata({}, p.get("metadata") or {}),
        "name": p["name"],
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": p.get("statement_descriptor"),
        "tax_code": None,
        "type": "service",
        "unit_label": p.get("unit_label"),
        "updated": now,
        "url": None,
    }


def create_product(ctx: Ctx) -> Obj:
    """POST /v1/products."""
    p = ctx.validate(PRODUCT_CREATE)
    if p.get("id") and p["id"] in ctx.store.by_type["products"]:
        raise invalid(
            f"Product already exists: {p['id']}", param="id", code="resource_already_exists"
        )
    return ctx.store.insert("products", _product(ctx.store, p.get("id"), p))


def retrieve_product(ctx: Ctx) -> Obj:
    """GET /v1/products/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("products", ctx.args[0], PRODUCT)


def update_product(ctx: Ctx) -> Obj:
    """POST /v1/products/{id}."""
    p = ctx.validate(PRODUCT_UPDATE)
    prod = ctx.store.get("products", ctx.args[0], PRODUCT)
    for key in ("name", "description", "unit_label", "statement_descriptor"):
        if key in p:
            prod[key] = p[key]
    if p.get("active") is not None:
        prod["active"] = p["active"]
    if "metadata" in p:
        prod["metadata"] = merge_metadata(prod["metadata"], p["metadata"])
    prod["updated"] = real_now()
    return prod


def list_products(ctx: Ctx) -> Obj:
    """GET /v1/products."""
    p = ctx.validate({**PAGING, "active": b(), "created": RANGE})
    rows = list(ctx.store.all("products"))
    if p.get("active") is not None:
        rows = [r for r in rows if r["active"] == p["active"]]
    return paginate(filter_created(rows, p.get("created")), p, "/v1/products", kind=PRODUCT)


def _check_pricing(p: dict[str, Any]) -> None:
    scheme = p.get("billing_scheme") or "per_unit"
    has_unit = p.get("unit_amount") is not None or p.get("unit_amount_decimal") is not None
    if p.get("unit_amount") is not None and p.get("unit_amount_decimal") is not None:
        raise invalid(
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            param="unit_amount",
            code="parameters_exclusive",
        )
    if scheme == "tiered":
        if not p.get("tiers"):
            raise missing_param("tiers")
        if not p.get("tiers_mode"):
            raise missing_param("tiers_mode")
        if has_unit:
            raise invalid(
                "unit_amount cannot be used with billing_scheme=tiered.", param="unit_amount"
            )
        for n, tier in enumerate(p["tiers"]):
            up_to = tier["up_to"]
            if up_to != "inf" and not up_to.isdigit():
                raise invalid(
                    "up_to must be a positive integer or 'inf'", param=f"tiers[{n}][up_to]"
                )
        if p["tiers"][-1]["up_to"] != "inf":
            raise invalid("The last tier must have up_to=inf.", param="tiers")
    elif not has_unit:
        # facts §7 problem 4: one of unit_amount / unit_amount_decimal is required.
        raise missing_param("unit_amount")
    if p.get("unit_amount") is not None and p["unit_amount"] < 0:
        raise invalid("This value must be greater than or equal to 0.", param="unit_amount")


def _check_recurring(store: Store, rec: dict[str, Any]) -> None:
    if rec.get("usage_type") == "metered":
        if not rec.get("meter"):
            # facts §4.1/§7 problem 3: legacy metered prices are gone since basil.
            raise invalid(
                "Metered prices must be backed by a billing meter since API version "
                "2025-03-31.basil: pass recurring[meter]=mtr_... (create one with "
                "POST /v1/billing/meters).",
                param="recurring[meter]",
                code="parameter_missing",
            )
        meter = store.get("meters", rec["meter"], "billing meter", param="recurring[meter]")
        if meter["status"] != "active":
            raise invalid(
                f"The meter {meter['id']} is inactive and cannot be attached to a price.",
                param="recurring[meter]",
            )
    elif rec.get("meter"):
        raise invalid(
            "recurring[meter] can only be set when recurring[usage_type] is metered.",
            param="recurring[meter]",
        )
    count = rec.get("interval_count") or 1
    if count < 1:
        raise invalid("interval_count must be at least 1.", param="recurring[interval_count]")


def create_price(ctx: Ctx) -> Obj:
    """POST /v1/prices."""
    p = ctx.validate(PRICE_CREATE)
    store = ctx.store
    currency = p["currency"].lower()
    if not _CURRENCY.match(currency):
        raise invalid(f"Invalid currency: {p['currency']}", param="currency")
    if p.get("product") and p.get("product_data"):
        raise invalid(
            "You may only specify one of these parameters: product, product_data.",
            param="product",
            code="parameters_exclusive",
        )
    if p.get("product"):
        store.get("products", p["product"], PRODUCT, param="product")
    elif not p.get("product_data"):
        raise missing_param("product")
    rec = p.get("recurring")
    if rec is not None:
        _check_recurring(store, rec)
    _check_pricing(p)
    product_id = p.get("product")
    if product_id is None:
        product_id = store.insert("products", _product(store, None, p["product_data"]))["id"]
    unit = p.get("unit_amount")
    unit_dec: Decimal | None = p.get("unit_amount_decimal")
    if unit is not None:
        unit_dec = Decimal(unit)
    elif unit_dec is not None and unit_dec == unit_dec.to_integral_value():
        unit = int(unit_dec)
    tiers = None
    if p.get("tiers"):
        tiers = [
            {
                "flat_amount": t.get("flat_amount"),
                "flat_amount_decimal": _dec_str(t.get("flat_amount_decimal"), t.get("flat_amount")),
                "unit_amount": t.get("unit_amount"),
                "unit_amount_decimal": _dec_str(t.get("unit_amount_decimal"), t.get("unit_amount")),
                "up_to": None if t["up_to"] == "inf" else int(t["up_to"]),
            }
            for t in p["tiers"]
        ]
    price: Obj = {
        "id": store.new_id("price"),
        "object": "price",
        "active": p.get("active", True) is not False,
        "billing_scheme": p.get("billing_scheme") or "per_unit",
        "created": real_now(),
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.get("lookup_key"),
        "metadata": merge_metadata({}, p.get("metadata") or {}),
        "nickname": p.get("nickname"),
        "product": product_id,
        "recurring": None,
        "tax_behavior": p.get("tax_behavior") or "unspecified",
        "tiers_mode": p.get("tiers_mode"),
        "transform_quantity": p.get("transform_quantity"),
        "type": "recurring" if rec is not None else "one_time",
        "unit_amount": unit,
        "unit_amount_decimal": None if unit_dec is None else _plain(unit_dec),
        "_tiers": tiers,
    }
    if rec is not None:
        price["recurring"] = {
            "interval": rec["interval"],
            "interval_count": rec.get("interval_count") or 1,
            "meter": rec.get("meter"),
            "trial_period_days": rec.get("trial_period_days"),
            "usage_type": rec.get("usage_type") or "licensed",
        }
    return store.insert("prices", price)


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _dec_str(dec: Decimal | None, whole: int | None) -> str | None:
    if dec is not None:
        return _plain(dec)
    return None if whole is None else str(whole)


def retrieve_price(ctx: Ctx) -> Obj:
    """GET /v1/prices/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("prices", ctx.args[0], PRICE)


def update_price(ctx: Ctx) -> Obj:
    """POST /v1/prices/{id}: only nickname, active, metadata, lookup_key change."""
    p = ctx.validate(PRICE_UPDATE)
    price = ctx.store.get("prices", ctx.args[0], PRICE)
    for key in ("nickname", "lookup_key"):
        if key in p:
            price[key] = p[key]
    if p.get("active") is not None:
        price["active"] = p["active"]
    if "metadata" in p:
        price["metadata"] = merge_metadata(price["metadata"], p["metadata"])
    return price


def list_prices(ctx: Ctx) -> Obj:
    """GET /v1/prices (product, active, currency, type filters)."""
    p = ctx.validate(
        {
            **PAGING,
            "product": s(),
            "active": b(),
            "currency": s(),
            "type": e("one_time", "recurring"),
            "created": RANGE,
        }
    )
    rows = list(ctx.store.all("prices"))
    for key in ("product", "active", "currency", "type"):
        if p.get(key) is not None:
            rows = [r for r in rows if r[key] == p[key]]
    return paginate(filter_created(rows, p.get("created")), p, "/v1/prices", kind=PRICE)


def register(router: Router) -> None:
    """Mount product and price routes."""
    router.add("POST", "/v1/products", create_product)
    router.add("GET", "/v1/products", list_products)
    router.add("GET", "/v1/products/{id}", retrieve_product)
    router.add("POST", "/v1/products/{id}", update_product)
    router.add("POST", "/v1/prices", create_price)
    router.add("GET", "/v1/prices", list_prices)
    router.add("GET", "/v1/prices/{id}", retrieve_price)
    router.add("POST", "/v1/prices/{id}", update_price)
