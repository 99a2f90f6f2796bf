"""Amounts for quantities: per-unit decimals, transform_quantity, tiers."""

from __future__ import annotations

from typing import Any

from stripe_emulator.pricing import amount_for


def _price(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "billing_scheme": "per_unit",
        "unit_amount_decimal": "5",
        "transform_quantity": None,
        "tiers_mode": None,
        "_tiers": None,
    }
    return base | kw


def test_per_unit_and_decimal_rounding_half_up() -> None:
    assert amount_for(_price(), 30) == 150
    assert amount_for(_price(unit_amount_decimal="0.5"), 31) == 16
    assert amount_for(_price(unit_amount_decimal="0.25"), 3) == 1


def test_negative_usage_bills_zero() -> None:
    assert amount_for(_price(), -4) == 0


def test_transform_quantity_rounds_packages() -> None:
    assert amount_for(_price(transform_quantity={"divide_by": 10, "round": "up"}), 11) == 10
    assert amount_for(_price(transform_quantity={"divide_by": 10, "round": "down"}), 19) == 5


def test_volume_and_graduated_tiers() -> None:
    tiers = [
        {"up_to": 10, "unit_amount_decimal": "10", "flat_amount_decimal": None},
        {"up_to": None, "unit_amount_decimal": "1", "flat_amount_decimal": "100"},
    ]
    graduated = _price(billing_scheme="tiered", tiers_mode="graduated", _tiers=tiers)
    volume = _price(billing_scheme="tiered", tiers_mode="volume", _tiers=tiers)
    assert amount_for(graduated, 25) == 100 + 15 + 100
    assert amount_for(volume, 25) == 25 + 100
    assert amount_for(volume, 10) == 100
