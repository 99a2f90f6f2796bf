"""Usage totals over a time window, answered from the hourly buckets.

Windows are `[from, to)` on whole hours: buckets hold hours, so a boundary inside an
hour could not be answered exactly from them and is refused by the API instead of
being silently rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

USAGE_QUERY = """
WITH window_buckets AS (
    SELECT total, max_value, last_value, last_ts, event_count, customer_ref
    FROM usage_buckets
    WHERE tenant_id = %(tenant_id)s AND metric = %(metric)s
      AND (%(customer_ref)s::text IS NULL OR customer_ref = %(customer_ref)s)
      AND hour_start >= %(from)s AND hour_start < %(to)s
)
SELECT coalesce(sum(total), 0), max(max_value), coalesce(sum(event_count), 0),
       (SELECT last_value FROM window_buckets
        ORDER BY last_ts DESC NULLS LAST, customer_ref DESC LIMIT 1)
FROM window_buckets
"""


@dataclass(frozen=True)
class UsageTotals:
    """Aggregates of one metric (optionally one customer) over a window."""

    total: Decimal
    max: Decimal | None
    last: Decimal | None
    events: int

    def answer(self) -> dict[str, Any]:
        """The JSON shape of `GET /v1/usage` (decimals become strings when rendered)."""
        return {"total": self.total, "max": self.max, "last": self.last, "events": self.events}


def is_hour_aligned(ts: datetime) -> bool:
    """True when the aware `ts` falls exactly on a UTC hour boundary."""
    utc = ts.astimezone(UTC)
    return utc.minute == 0 and utc.second == 0 and utc.microsecond == 0


def usage_totals(
    conn: psycopg.Connection,
    *,
    tenant_id: str,
    metric: str,
    customer_ref: str | None,
    start: datetime,
    end: datetime,
) -> UsageTotals:
    """Sum, max, last value and event count of the buckets with hour in `[start, end)`."""
    row = conn.execute(
        USAGE_QUERY,
        {
            "tenant_id": tenant_id,
            "metric": metric,
            "customer_ref": customer_ref,
            "from": start,
            "to": end,
        },
    ).fetchone()
    assert row is not None
    return UsageTotals(total=row[0], max=row[1], last=row[3], events=int(row[2]))
