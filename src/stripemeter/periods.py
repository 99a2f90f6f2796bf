"""Time arithmetic shared by the writer and the reconciler.

Billing periods come from Stripe (subscription items and invoice lines); this module
only aligns and compares them. Unix seconds are used wherever Stripe is involved.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

HOUR = 3600
# Stripe accepts meter events at most 35 days old; keep a margin for clock skew and
# for the time a push spends in backoff.
METER_EVENT_MAX_AGE_S = 35 * 86400 - 15 * 60
METER_EVENT_MAX_FUTURE_S = 5 * 60
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def to_unix(moment: datetime) -> int:
    """Whole Unix seconds of an aware datetime."""
    return int(moment.timestamp())


def from_unix(ts: int) -> datetime:
    """An aware UTC datetime for Unix seconds."""
    return datetime.fromtimestamp(ts, tz=UTC)


def ceil_minute(ts: int) -> int:
    """`ts` rounded up to a minute boundary.

    Meter events are pushed at hour boundaries, so an event is in `[start, end)` exactly
    when it is in `[ceil_minute(start), ceil_minute(end))` — the minute-aligned window
    the event summary endpoint needs.
    """
    return ts if ts % 60 == 0 else ts - ts % 60 + 60


def parse_month(text: str, field: str) -> tuple[datetime, datetime]:
    """`YYYY-MM` -> (first instant of the month, first instant of the next), UTC.

    Raises ValueError naming `field` when the text is not a month.
    """
    match = _MONTH.match(text.strip())
    if not match:
        raise ValueError(f"{field} must be a month as YYYY-MM (got {text!r})")
    year, month = int(match.group(1)), int(match.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = (
        datetime(year + 1, 1, 1, tzinfo=UTC)
        if month == 12
        else datetime(year, month + 1, 1, tzinfo=UTC)
    )
    return start, end


def meter_event_timestamp(
    hour_start: int, offset: int, *, frozen_time: int | None, real_now: int
) -> int | None:
    """The timestamp to push a bucket with, or None when Stripe cannot take it yet.

    The event sits at `hour_start + offset` (inside the bucket), moved back to the
    customer's test-clock time when that is earlier but still inside the bucket.
    None means "not yet": the whole bucket is after the clock's frozen time (for a
    customer without a clock: more than five minutes ahead of real time). Buckets too
    old for Stripe are detected with `too_old` before this is called.
    """
    ts = hour_start + min(max(offset, 0), HOUR - 1)
    # Stripe bounds a clock customer's events by the clock's frozen time, which may be
    # far ahead of real time once the clock was advanced (`stripemeter.clocks`).
    limit = real_now + METER_EVENT_MAX_FUTURE_S if frozen_time is None else frozen_time
    if ts <= limit:
        return ts
    if hour_start <= limit:
        return limit
    return None


def too_old(hour_start: int, real_now: int) -> bool:
    """Whether a bucket is beyond Stripe's 35-day window for meter events."""
    return hour_start < real_now - METER_EVENT_MAX_AGE_S
