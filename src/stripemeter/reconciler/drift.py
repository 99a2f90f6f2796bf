"""Drift: how far the local figure is from the Stripe figure it is compared with, and
whether that is parity.

One rule for the reports (`engine`), their summaries (`reports.Totals`), the `/metrics`
gauges (`stripemeter.ops.gauges`) and the demo's `validate` step: drift_abs =
|local - compared| and drift_pct = drift_abs / |compared|, 1 when compared is 0 and there
is drift, 0 when there is none. Reports and summaries store and show drift_pct to
`PCT_STEP`; the gauges keep the float quotient of their float sums.

Parity is the seed's tolerance rule, `within_tolerance`: drift_abs == 0 or drift_pct <=
RECONCILIATION_EPSILON. It compares the exact quotient, not the rounded one, so epsilon 0
means exactly equal and a drift_pct just above epsilon never rounds down into parity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

# drift_pct as stored in reports and shown in summaries: six decimal places.
PCT_STEP = Decimal("0.000001")

# What reports and validate say of a period at parity whose drift is not zero.
WITHIN_TOLERANCE = "within tolerance"

Number = TypeVar("Number", Decimal, float)


@dataclass(frozen=True)
class Drift:
    """The comparison of one period: absolute and relative drift.

    `drift_pct` is rounded to `PCT_STEP` (what reports store); `exact_pct` is the exact
    quotient the tolerance rule compares with epsilon.
    """

    drift_abs: Decimal
    drift_pct: Decimal
    exact_pct: Decimal


def drift_pct(drift_abs: Number, compared: Number) -> Number:
    """drift_abs / |compared|, exact; 1 when compared is 0 and drift_abs is not, else 0."""
    if compared == 0:
        return type(drift_abs)(1 if drift_abs else 0)
    return drift_abs / abs(compared)


def rounded_pct(drift_abs: Decimal, compared: Decimal) -> Decimal:
    """`drift_pct` to `PCT_STEP`, as reports store it and summaries show it."""
    return drift_pct(drift_abs, compared).quantize(PCT_STEP)


def drift(local: Decimal, compared: Decimal) -> Drift:
    """The drift of `local` from `compared` (drift_pct to `PCT_STEP`)."""
    return absolute_drift(abs(local - compared), compared)


def absolute_drift(drift_abs: Decimal, compared: Decimal) -> Drift:
    """The Drift of an absolute drift against `compared` (a summary's sum of per-item
    drifts, which is not |local - compared| of the sums)."""
    return Drift(drift_abs, rounded_pct(drift_abs, compared), drift_pct(drift_abs, compared))


def within_tolerance(d: Drift, epsilon: Decimal) -> bool:
    """The seed's parity rule: drift_abs == 0 or drift_pct <= epsilon (exact quotient)."""
    return d.drift_abs == 0 or d.exact_pct <= epsilon


def tolerance_note(d: Drift, epsilon: Decimal) -> str | None:
    """`WITHIN_TOLERANCE` for a drift that is not zero but within epsilon, else None."""
    return WITHIN_TOLERANCE if d.drift_abs != 0 and within_tolerance(d, epsilon) else None
