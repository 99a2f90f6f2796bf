"""Drift: how far the local figure is from the Stripe figure it is compared with.

One rule for the reports (`engine`), their summaries (`reports.Totals`) and the
`/metrics` gauges (`stripemeter.ops.gauges`): drift_abs = |local - compared| and
drift_pct = drift_abs / |compared|, 1 when compared is 0 and there is drift, 0 when
there is none. Reports and summaries store and show drift_pct to `PCT_STEP`; the gauges
keep the float quotient of their float sums.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypeVar

# drift_pct as stored in reports and shown in summaries: six decimal places.
PCT_STEP = Decimal("0.000001")

Number = TypeVar("Number", Decimal, float)


@dataclass(frozen=True)
class Drift:
    """The comparison of one period: absolute and relative drift."""

    drift_abs: Decimal
    drift_pct: Decimal


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
    diff = abs(local - compared)
    return Drift(diff, rounded_pct(diff, compared))
