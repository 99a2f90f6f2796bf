"""Calendar arithmetic for billing periods (UTC, Unix seconds)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

_DAY = 86400


def add_interval(ts: int, interval: str, count: int) -> int:
    """`ts` moved forward by `count` intervals; months/years keep the day, clamped to month end.

    Jan 31 + 1 month = Feb 28/29, as Stripe bills a month-end anchor in a short month.
    """
    if interval == "day":
        return ts + count * _DAY
    if interval == "week":
        return ts + count * 7 * _DAY
    months = count * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(ts, UTC)
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def interval_seconds(interval: str, count: int) -> int:
    """A rough length used only to compare intervals (shortest subscription on a clock)."""
    per = {"day": _DAY, "week": 7 * _DAY, "month": 30 * _DAY, "year": 365 * _DAY}[interval]
    return per * count
