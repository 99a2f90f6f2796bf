"""How much a price charges for a quantity (per-unit, transform_quantity, tiers)."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from stripe_emulator.store import Obj


def billable_quantity(price: Obj, quantity: int) -> int:
    """Apply `transform_quantity` (divide_by, round up/down)."""
    transform = price.get("transform_quantity")
    if not transform:
        return quantity
    divided = Decimal(quantity) / Decimal(transform["divide_by"])
    return math.ceil(divided) if transform["round"] == "up" else math.floor(divided)


def amount_for(price: Obj, quantity: int) -> int:
    """Amount in the currency's minor unit for `quantity` units, rounded half up."""
    qty = billable_quantity(price, max(quantity, 0))
    if price["billing_scheme"] == "tiered":
        total = _tiered(price, qty)
    else:
        total = Decimal(price["unit_amount_decimal"] or 0) * qty
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _tier_unit(tier: dict[str, Any]) -> Decimal:
    return Decimal(tier["unit_amount_decimal"] or 0)


def _tier_flat(tier: dict[str, Any]) -> Decimal:
    return Decimal(tier["flat_amount_decimal"] or 0)


def _tiered(price: Obj, qty: int) -> Decimal:
    tiers = price["_tiers"] or []
    if price["tiers_mode"] == "volume":
        for tier in tiers:
            if tier["up_to"] is None or qty <= tier["up_to"]:
                return _tier_unit(tier) * qty + _tier_flat(tier)
        return Decimal(0)
    total, lower = Decimal(0), 0
    for tier in tiers:
        if qty <= lower:
            break
        upper = qty if tier["up_to"] is None else min(qty, tier["up_to"])
        total += _tier_unit(tier) * (upper - lower) + _tier_flat(tier)
        lower = upper
    return total


def unit_decimal_str(price: Obj) -> str | None:
    """The per-unit amount as Stripe's decimal string (None for tiered prices)."""
    value = price.get("unit_amount_decimal")
    return None if value is None else str(value)
