"""What a whole-unit quantity costs under a Stripe price, the way Stripe computes it.

Per unit: quantity x unit amount; tiered prices: `graduated` (each tier prices its own
units, plus its flat amount once entered) or `volume` (the tier the total falls in
prices every unit); `transform_quantity` divides first and rounds up or down. Amounts
are in the currency's minor unit, rounded half up, as Stripe rounds invoice lines.

A correction's amount is the difference of two such amounts (what the ledger's quantity
costs minus what was billed), so tiers are respected: 5 more units in a cheaper tier cost
that tier's price, not the first tier's.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

from stripemeter.stripe.gateway import PriceTerms


def round_minor(value: Decimal) -> int:
    """An amount in minor units, rounded half up."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def billable_units(terms: PriceTerms, quantity: int) -> int:
    """The quantity after `transform_quantity` (divide_by, rounded up or down)."""
    if terms.divide_by is None:
        return quantity
    divided = Decimal(quantity) / Decimal(terms.divide_by)
    return math.ceil(divided) if terms.round_up else math.floor(divided)


def amount_for(terms: PriceTerms, quantity: int) -> int:
    """What `quantity` units cost under `terms`, in minor units."""
    units = billable_units(terms, max(quantity, 0))
    if terms.billing_scheme != "tiered":
        return round_minor((terms.unit_amount or Decimal(0)) * units)
    if terms.tiers_mode == "volume":
        for tier in terms.tiers:
            if tier.up_to is None or units <= tier.up_to:
                return round_minor(tier.unit_amount * units + tier.flat_amount)
        return 0
    total, lower = Decimal(0), 0
    for tier in terms.tiers:
        if units <= lower:
            break
        upper = units if tier.up_to is None else min(units, tier.up_to)
        total += tier.unit_amount * (upper - lower) + tier.flat_amount
        lower = upper
    return round_minor(total)


def correction_amount(terms: PriceTerms, ledger: int, billed: int) -> int:
    """The amount of correcting `billed` units to `ledger` units, positive either way.

    A plain per-unit price is billed by Stripe as |difference| x unit amount (the
    invoice item's or credit note line's own rounding); any other price as the
    difference of the two totals.
    """
    if terms.plain_per_unit:
        return round_minor((terms.unit_amount or Decimal(0)) * abs(ledger - billed))
    return abs(amount_for(terms, ledger) - amount_for(terms, billed))
