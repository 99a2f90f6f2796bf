"""Products and prices (facts §3.7).

Since `2025-03-31.basil` a metered price must name a meter, and every per-unit price
needs `unit_amount` or `unit_amount_decimal` (tiered prices need `tiers`).

Parameters: every parameter of the SDK's `ProductCreateParams`, `ProductUpdateParams`,
`ProductListParams`, `PriceCreateParams`, `PriceUpdateParams` and `PriceListParams` is
declared. Presentation fields (images, url, tax code/details, statement descriptor,
unit label, marketing features, package dimensions, shippable, type) are stored and
echoed; `default_price_data` creates the price and makes it the default;
`transfer_lookup_key` moves a lookup key from the price holding it. Multi-currency
(`currency_options`) and customer-chosen amounts (`custom_unit_amount`) change what an
invoice charges in ways the engine does not model: `emulator_unsupported`.

Omitted vs null (the SDK's annotations are the schema; "present" = sent, maybe null).
Sources: the Product and Price objects in Stripe's API reference
(docs.stripe.com/api/products/object, /api/prices/object: `tiers` and
`currency_options` are "includable", sent only when expanded) and stripe-node's types:

| field                                  | rule                                            |
|----------------------------------------|-------------------------------------------------|
| `price.tiers`                          | omitted unless `expand[]=tiers` (`data.tiers`)  |
| `price.currency_options`               | omitted (expanding it is emulator_unsupported)  |
| `product.deleted`, `price.deleted`     | omitted; a deleted product is only              |
|                                        | `{id, object, deleted: true}`                   |
| `product.tax_details`                  | present, null until set ([inferred])            |
| `product.package_dimensions`, `url`,   | present, null until set                         |
| `shippable`, `tax_code`, `default_price` |                                                 |
| `price.custom_unit_amount`             | present, null (never set: unsupported)          |
| `price.transform_quantity`, `tiers_mode`, `recurring` | present, null when unset         |
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from stripe_emulator.customers import merge_metadata, refuse_includable
from stripe_emulator.errors import invalid, missing_param
from stripe_emulator.lists import in_range, paginate
from stripe_emulator.params import (
    CREATED,
    EXPAND,
    PAGING,
    Spec,
    b,
    d,
    e,
    i,
    lst,
    m,
    o,
    s,
    u,
)
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, real_now

PRODUCT = "product"
PRICE = "price"
_CURRENCY = re.compile(r"^[a-z]{3}$")
INTERVAL = e("day", "week", "month", "year", required=True)
TAX_BEHAVIOR = e("exclusive", "inclusive", "unspecified")
TAX_DETAILS = o({"performance_location": s(), "tax_code": s()})
_DIMENSION = d(required=True)
PACKAGE_DIMENSIONS = o(
    {"height": _DIMENSION, "length": _DIMENSION, "weight": _DIMENSION, "width": _DIMENSION}
)

PRODUCT_UPDATE: dict[str, Spec] = {
    "name": s(),
    "active": b(),
    "description": s(),
    "metadata": m(),
    "unit_label": s(),
    "statement_descriptor": s(),
    "expand": EXPAND,
    "images": lst(s()),
    "marketing_features": lst(o({"name": s(required=True)})),
    "package_dimensions": PACKAGE_DIMENSIONS,
    "shippable": b(),
    "tax_code": s(),
    "tax_details": TAX_DETAILS,
    "url": s(),
    "default_price": s(),
}
DEFAULT_PRICE_DATA = o(
    {
        "currency": s(required=True),
        "currency_options": u(),
        "custom_unit_amount": u(),
        "metadata": m(),
        "recurring": o({"interval": INTERVAL, "interval_count": i()}),
        "tax_behavior": TAX_BEHAVIOR,
        "unit_amount": i(),
        "unit_amount_decimal": d(),
    }
)
PRODUCT_CREATE: dict[str, Spec] = {
    **{k: v for k, v in PRODUCT_UPDATE.items() if k != "default_price"},
    "name": s(required=True),
    "id": s(),
    "type": e("good", "service"),
    "default_price_data": DEFAULT_PRICE_DATA,
}
PRODUCT_LIST: dict[str, Spec] = {
    **PAGING,
    "active": b(),
    "created": CREATED,
    "ids": lst(s()),
    "shippable": b(),
    "type": e("good", "service"),
    "url": s(),
}
TIER = o(
    {
        "up_to": s(required=True),
        "unit_amount": i(),
        "unit_amount_decimal": d(),
        "flat_amount": i(),
        "flat_amount_decimal": d(),
    }
)
PRICE_UPDATE: dict[str, Spec] = {
    "nickname": s(),
    "active": b(),
    "metadata": m(),
    "lookup_key": s(),
    "expand": EXPAND,
    "tax_behavior": TAX_BEHAVIOR,
    "transfer_lookup_key": b(),
    "currency_options": u(),
}
PRICE_CREATE: dict[str, Spec] = {
    **PRICE_UPDATE,
    "currency": s(required=True),
    "product": s(),
    "product_data": o(
        {
            "name": s(required=True),
            "active": b(),
            "id": s(),
            "metadata": m(),
            "statement_descriptor": s(),
            "tax_code": s(),
            "tax_details": TAX_DETAILS,
            "unit_label": s(),
        }
    ),
    "unit_amount": i(),
    "unit_amount_decimal": d(),
    "custom_unit_amount": u(),
    "billing_scheme": e("per_unit", "tiered"),
    "tiers": lst(TIER),
    "tiers_mode": e("graduated", "volume"),
    "recurring": o(
        {
            "interval": INTERVAL,
            "interval_count": i(),
            "usage_type": e("licensed", "metered"),
            "meter": s(),
            "trial_period_days": i(),
        }
    ),
    "transform_quantity": o(
        {"divide_by": i(required=True), "round": e("up", "down", required=True)}
    ),
}
PRICE_LIST: dict[str, Spec] = {
    **PAGING,
    "product": s(),
    "active": b(),
    "currency": s(),
    "type": e("one_time", "recurring"),
    "created": CREATED,
    "lookup_keys": lst(s()),
    "recurring": o(
        {
            "interval": e("day", "week", "month", "year"),
            "meter": s(),
            "usage_type": e("licensed", "metered"),
        }
    ),
}


def _dimensions(value: dict[str, Decimal] | None) -> Obj | None:
    if value is None:
        return None
    return {k: float(value[k]) for k in ("height", "length", "weight", "width")}


def _tax_details(value: dict[str, Any] | None) -> Obj | None:
    if value is None:
        return None
    return {
        "performance_location": value.get("performance_location"),
        "tax_code": value.get("tax_code"),
    }


def _product(store: Store, obj_id: str | None, p: dict[str, Any]) -> Obj:
    now = real_now()
    prod: Obj = {
        "id": obj_id or store.new_id("prod"),
        "object": "product",
        "active": p.get("active", True) is not False,
        "created": now,
        "default_price": None,
        "description": None,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": {},
        "name": p["name"],
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "tax_details": None,
        "type": p.get("type") or "service",
        "unit_label": None,
        "updated": now,
        "url": None,
    }
    _apply_product(prod, p)
    return prod


def _apply_product(prod: Obj, p: dict[str, Any]) -> None:
    """Set every echoed field present in `p` (an empty string unsets nullable ones)."""
    for key in ("name", "description", "unit_label", "statement_descriptor", "url", "tax_code"):
        if key in p:
            prod[key] = p[key]
    for key in ("active", "shippable"):
        if p.get(key) is not None:
            prod[key] = p[key]
    if "images" in p:
        prod["images"] = list(p["images"] or [])
    if "marketing_features" in p:
        prod["marketing_features"] = [{"name": f["name"]} for f in p["marketing_features"] or []]
    if "package_dimensions" in p:
        prod["package_dimensions"] = _dimensions(p["package_dimensions"])
    if "tax_details" in p:
        prod["tax_details"] = _tax_details(p["tax_details"])
    if "metadata" in p:
        prod["metadata"] = merge_metadata(prod["metadata"], p["metadata"])


def _check_new_product_id(store: Store, obj_id: str | None, param: str) -> None:
    if obj_id and obj_id in store.by_type["products"]:
        raise invalid(
            f"Product already exists: {obj_id}", param=param, code="resource_already_exists"
        )


def create_product(ctx: Ctx) -> Obj:
    """POST /v1/products (with `default_price_data`: its price too, as the default)."""
    p = ctx.validate(PRODUCT_CREATE)
    store = ctx.store
    _check_new_product_id(store, p.get("id"), "id")
    data = p.get("default_price_data")
    if data is not None:
        _check_currency(data["currency"], "default_price_data[currency]")
        _check_pricing(data, "default_price_data")
        if data.get("recurring") is not None:
            _check_recurring(store, data["recurring"], "default_price_data[recurring]")
    prod = store.insert("products", _product(store, p.get("id"), p))
    if data is not None:
        prod["default_price"] = _make_price(store, data, prod["id"])["id"]
    return prod


def retrieve_product(ctx: Ctx) -> Obj:
    """GET /v1/products/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("products", ctx.args[0], PRODUCT)


def update_product(ctx: Ctx) -> Obj:
    """POST /v1/products/{id}: validated fully before anything changes."""
    p = ctx.validate(PRODUCT_UPDATE)
    prod = ctx.store.get("products", ctx.args[0], PRODUCT)
    if "name" in p and p["name"] is None:
        raise invalid("You must provide a name for the product.", param="name")
    if p.get("default_price") is not None:
        price = ctx.store.get("prices", p["default_price"], PRICE, param="default_price")
        if price["product"] != prod["id"]:
            raise invalid(
                f"The price `{price['id']}` does not belong to the product `{prod['id']}`.",
                param="default_price",
            )
        if not price["active"]:
            raise invalid(
                f"The price `{price['id']}` is archived and cannot be the default price.",
                param="default_price",
            )
    _apply_product(prod, p)
    if "default_price" in p:
        prod["default_price"] = p["default_price"]
    prod["updated"] = real_now()
    return prod


def delete_product(ctx: Ctx) -> Obj:
    """DELETE /v1/products/{id}: only a product without prices (Stripe's rule)."""
    ctx.validate({})
    prod = ctx.store.get("products", ctx.args[0], PRODUCT)
    if any(pr["product"] == prod["id"] for pr in ctx.store.all("prices")):
        # [inferred] message wording; the rule is in the API reference.
        raise invalid(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    ctx.store.remove("products", prod["id"])
    return {"id": prod["id"], "object": "product", "deleted": True}


def list_products(ctx: Ctx) -> Obj:
    """GET /v1/products (active, created, ids, shippable, type, url filters)."""
    p = ctx.validate(PRODUCT_LIST)
    rows = [r for r in ctx.store.all("products") if in_range(r["created"], p.get("created"))]
    for key in ("active", "shippable", "type", "url"):
        if p.get(key) is not None:
            rows = [r for r in rows if r[key] == p[key]]
    if p.get("ids"):
        rows = [r for r in rows if r["id"] in p["ids"]]
    return paginate(rows, p, "/v1/products", kind=PRODUCT)


def _check_currency(value: str, param: str) -> str:
    currency = value.lower()
    if not _CURRENCY.match(currency):
        raise invalid(f"Invalid currency: {value}", param=param)
    return currency


def _check_pricing(p: dict[str, Any], prefix: str = "") -> None:
    def name(key: str) -> str:
        return f"{prefix}[{key}]" if prefix else key

    scheme = p.get("billing_scheme") or "per_unit"
    has_unit = p.get("unit_amount") is not None or p.get("unit_amount_decimal") is not None
    if p.get("unit_amount") is not None and p.get("unit_amount_decimal") is not None:
        raise invalid(
            "You may only specify one of these parameters: unit_amount, unit_amount_decimal.",
            param=name("unit_amount"),
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
        if p.get("transform_quantity") is not None:
            raise invalid(
                "transform_quantity cannot be used with billing_scheme=tiered.",
                param="transform_quantity",
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
        raise missing_param(name("unit_amount"))
    if p.get("unit_amount") is not None and p["unit_amount"] < 0:
        raise invalid("This value must be greater than or equal to 0.", param=name("unit_amount"))


def _check_recurring(store: Store, rec: dict[str, Any], prefix: str = "recurring") -> None:
    if rec.get("usage_type") == "metered":
        if not rec.get("meter"):
            # facts §4.1/§7 problem 3: legacy metered prices are gone since basil.
            raise invalid(
                "Metered prices must be backed by a billing meter since API version "
                "2025-03-31.basil: pass recurring[meter]=mtr_... (create one with "
                "POST /v1/billing/meters).",
                param=f"{prefix}[meter]",
                code="parameter_missing",
            )
        meter = store.get("meters", rec["meter"], "billing meter", param=f"{prefix}[meter]")
        if meter["status"] != "active":
            raise invalid(
                f"The meter {meter['id']} is inactive and cannot be attached to a price.",
                param=f"{prefix}[meter]",
            )
    elif rec.get("meter"):
        raise invalid(
            "recurring[meter] can only be set when recurring[usage_type] is metered.",
            param=f"{prefix}[meter]",
        )
    count = rec.get("interval_count") or 1
    if count < 1:
        raise invalid("interval_count must be at least 1.", param=f"{prefix}[interval_count]")


def _lookup_holder(store: Store, key: str | None, price_id: str | None) -> Obj | None:
    """The other price already holding lookup key `key`, if any."""
    if key is None:
        return None
    for price in store.all("prices"):
        if price["lookup_key"] == key and price["id"] != price_id:
            return price
    return None


def _check_lookup_key(store: Store, p: dict[str, Any], price_id: str | None) -> Obj | None:
    """Refuse a taken lookup key unless `transfer_lookup_key`; return the price to strip."""
    holder = _lookup_holder(store, p.get("lookup_key"), price_id)
    if holder is not None and not p.get("transfer_lookup_key"):
        raise invalid(
            f"A price (`{holder['id']}`) already uses that lookup key.", param="lookup_key"
        )
    return holder


def create_price(ctx: Ctx) -> Obj:
    """POST /v1/prices."""
    tiers = _take_includes(ctx)
    p = ctx.validate(PRICE_CREATE)
    store = ctx.store
    _check_currency(p["currency"], "currency")
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
    else:
        _check_new_product_id(store, p["product_data"].get("id"), "product_data[id]")
    rec = p.get("recurring")
    if rec is not None:
        _check_recurring(store, rec)
    _check_pricing(p)
    holder = _check_lookup_key(store, p, None)
    product_id = p.get("product")
    if product_id is None:
        data = p["product_data"]
        product_id = store.insert("products", _product(store, data.get("id"), data))["id"]
    if holder is not None:
        holder["lookup_key"] = None
    return _with_tiers(_make_price(store, p, product_id), tiers)


def _make_price(store: Store, p: dict[str, Any], product_id: str) -> Obj:
    """Insert the price described by validated (and checked) params `p`."""
    rec = p.get("recurring")
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
        "currency": p["currency"].lower(),
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


def _take_includes(ctx: Ctx) -> bool:
    """Before validation: refuse `expand[]=currency_options` (not modelled) and take
    `tiers` / `data.tiers` out of the raw expand list (they are includable fields, not
    ids to expand); whether tiers were asked for."""
    refuse_includable(ctx, ("currency_options",))
    raw = ctx.raw.get("expand")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        return False
    kept = [path for path in raw if path not in ("tiers", "data.tiers")]
    if len(kept) == len(raw):
        return False
    ctx.raw["expand"] = kept
    return True


def _with_tiers(price: Obj, tiers: bool) -> Obj:
    """The price as answered: `tiers` only when expanded (an includable field)."""
    return {**price, "tiers": price["_tiers"]} if tiers else price


def retrieve_price(ctx: Ctx) -> Obj:
    """GET /v1/prices/{id}."""
    tiers = _take_includes(ctx)
    ctx.validate({"expand": EXPAND})
    return _with_tiers(ctx.store.get("prices", ctx.args[0], PRICE), tiers)


def update_price(ctx: Ctx) -> Obj:
    """POST /v1/prices/{id}: nickname, active, metadata, lookup_key, tax_behavior."""
    tiers = _take_includes(ctx)
    p = ctx.validate(PRICE_UPDATE)
    store = ctx.store
    price = store.get("prices", ctx.args[0], PRICE)
    new_tax = p.get("tax_behavior")
    if (
        new_tax is not None
        and price["tax_behavior"] in ("inclusive", "exclusive")
        and new_tax != price["tax_behavior"]
    ):
        raise invalid(
            "tax_behavior cannot be changed once it is inclusive or exclusive.",
            param="tax_behavior",
        )
    holder = _check_lookup_key(store, p, price["id"])
    if holder is not None:
        holder["lookup_key"] = None
    for key in ("nickname", "lookup_key"):
        if key in p:
            price[key] = p[key]
    if new_tax is not None:
        price["tax_behavior"] = new_tax
    if p.get("active") is not None:
        price["active"] = p["active"]
    if "metadata" in p:
        price["metadata"] = merge_metadata(price["metadata"], p["metadata"])
    return _with_tiers(price, tiers)


def list_prices(ctx: Ctx) -> Obj:
    """GET /v1/prices (product, active, currency, type, created, lookup_keys, recurring)."""
    tiers = _take_includes(ctx)
    p = ctx.validate(PRICE_LIST)
    rows = [r for r in ctx.store.all("prices") if in_range(r["created"], p.get("created"))]
    if p.get("currency") is not None:
        p["currency"] = p["currency"].lower()
    for key in ("product", "active", "currency", "type"):
        if p.get(key) is not None:
            rows = [r for r in rows if r[key] == p[key]]
    if p.get("lookup_keys"):
        rows = [r for r in rows if r["lookup_key"] in p["lookup_keys"]]
    for key, want in (p.get("recurring") or {}).items():
        if want is not None:
            rows = [r for r in rows if r["recurring"] is not None and r["recurring"][key] == want]
    page = paginate(rows, p, "/v1/prices", kind=PRICE)
    page["data"] = [_with_tiers(r, tiers) for r in page["data"]]
    return page


def register(router: Router) -> None:
    """Mount product and price routes."""
    router.add("POST", "/v1/products", create_product)
    router.add("GET", "/v1/products", list_products)
    router.add("GET", "/v1/products/{id}", retrieve_product)
    router.add("POST", "/v1/products/{id}", update_product)
    router.add("DELETE", "/v1/products/{id}", delete_product)
    router.add("POST", "/v1/prices", create_price)
    router.add("GET", "/v1/prices", list_prices)
    router.add("GET", "/v1/prices/{id}", retrieve_price)
    router.add("POST", "/v1/prices/{id}", update_price)
