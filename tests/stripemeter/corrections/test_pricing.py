"""What a correction costs: per unit, graduated and volume tiers, transform_quantity."""

from __future__ import annotations

from decimal import Decimal

import pytest

from stripemeter.corrections.pricing import amount_for, billable_units, correction_amount
from stripemeter.stripe.gateway import PriceTerms, PriceTier

PER_UNIT = PriceTerms("price_u", "usd", "per_unit", Decimal(5))
FRACTIONAL = PriceTerms("price_f", "usd", "per_unit", Decimal("0.35"))
TIERS = (
    PriceTier(up_to=100, unit_amount=Decimal(10), flat_amount=Decimal(0)),
    PriceTier(up_to=None, unit_amount=Decimal(2), flat_amount=Decimal(50)),
)
GRADUATED = PriceTerms("price_g", "usd", "tiered", None, "graduated", TIERS)
VOLUME = PriceTerms("price_v", "usd", "tiered", None, "volume", TIERS)
PACKS = PriceTerms("price_p", "usd", "per_unit", Decimal(100), divide_by=10, round_up=True)


def test_per_unit_prices_bill_the_difference_times_the_unit_amount() -> None:
    assert amount_for(PER_UNIT, 430) == 2150
    assert correction_amount(PER_UNIT, 430, 425) == 25
    assert correction_amount(PER_UNIT, 425, 430) == 25
    # Stripe rounds the correction's own line: 5 x 0.35 = 1.75 -> 2, not 151 - 149.
    assert correction_amount(FRACTIONAL, 430, 425) == 2


@pytest.mark.parametrize(
    ("ledger", "billed", "amount"),
    [
        (105, 100, 5 * 2 + 50),  # the first units of the second tier pay its flat fee
        (110, 105, 5 * 2),  # further units only its unit amount
        (100, 95, 5 * 10),
        (102, 98, 2 * 10 + 2 * 2 + 50),  # across the boundary
    ],
)
def test_graduated_tiers_price_the_units_in_the_tier_they_fall_in(
    ledger: int, billed: int, amount: int
) -> None:
    assert correction_amount(GRADUATED, ledger, billed) == amount


def test_volume_tiers_reprice_every_unit_when_the_total_changes_tier() -> None:
    assert amount_for(VOLUME, 100) == 1000
    assert amount_for(VOLUME, 101) == 101 * 2 + 50
    assert correction_amount(VOLUME, 101, 100) == 1000 - 252


def test_transform_quantity_bills_whole_packs() -> None:
    assert billable_units(PACKS, 21) == 3
    assert correction_amount(PACKS, 21, 20) == 100
    assert correction_amount(PACKS, 25, 21) == 0
    assert not PACKS.plain_per_unit and PER_UNIT.plain_per_unit
