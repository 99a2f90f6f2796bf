"""Clock-aware time: what "now" is for a customer who lives on a Stripe test clock.

Stripe bounds a test-clock customer's meter events by the clock's `frozen_time`, not by
the wall clock, and bills its periods on that clock. So the service keeps, per (tenant,
Stripe customer), the customer's test clock and the latest `frozen_time` it saw, in
`customer_clocks`, and everything that judges time for a customer asks `customer_now`:

- ingest's future bound (`MAX_FUTURE_SKEW_SECONDS`) for a bound customerRef on a clock;
- the writer's latest pushable timestamp;
- the reconciler's horizon (which periods are open, how far Stripe's summaries go).

Customers without a clock (or not bound at all) live on the wall clock, as before.

Where the service learns a customer's clock (docs/clocks.md has the whole story):

1. binding time: the binding's Stripe verification reads the customer (`test_clock`)
   and its clock (`bindings.verify_customer` returns a `ClockReading`, `bind` stores it);
2. the `test_helpers.test_clock.ready` webhook: every customer on that clock
   (`record_clock_time`);
3. the writer's and reconciler's Stripe reads (`observe`);
4. on demand: ingest re-reads a clock from Stripe when an event lies beyond the known
   bound, at most once per customer every `CLOCK_REREAD_INTERVAL_S` (`ClockRereads`).

`frozen_time` only moves forward here whatever the order of those observations: a clock
only advances, so an older reading arriving late never moves a customer's time back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from stripemeter.stripe.gateway import ClockReading, StripeGateway

__all__ = [
    "BoundClock",
    "ClockReading",
    "ClockRereads",
    "clock_bounds",
    "customer_now",
    "observe",
    "record_clock",
    "record_clock_time",
]


@dataclass(frozen=True)
class BoundClock:
    """A bound customerRef on a test clock and the clock's latest known frozen time."""

    tenant_id: str
    customer_ref: str
    stripe_customer_id: str
    test_clock_id: str
    frozen_time: datetime | None


def customer_now(frozen_time: int | None, *, wall: float | None = None) -> int:
    """Now for a customer, unix seconds: its clock's frozen time, else the wall clock.

    The one definition of a customer's "now" (ingest, writer, reconciler).
    """
    if frozen_time is not None:
        return frozen_time
    return int(time.time() if wall is None else wall)


def _instant(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


def record_clock(
    conn: psycopg.Connection, tenant_id: str, stripe_customer_id: str, reading: ClockReading
) -> None:
    """Store what Stripe said of the customer's clock; not committed here.

    On the same clock frozen_time only moves forward; a customer moved to another clock
    (or off clocks) takes the new reading as it is.
    """
    conn.execute(
        "INSERT INTO customer_clocks (tenant_id, stripe_customer_id, test_clock_id,"
        " frozen_time, observed_at) VALUES (%s, %s, %s, %s, clock_timestamp())"
        " ON CONFLICT (tenant_id, stripe_customer_id) DO UPDATE SET"
        " frozen_time = CASE WHEN customer_clocks.test_clock_id IS NOT DISTINCT FROM"
        "  EXCLUDED.test_clock_id THEN greatest(customer_clocks.frozen_time,"
        "  EXCLUDED.frozen_time) ELSE EXCLUDED.frozen_time END,"
        " test_clock_id = EXCLUDED.test_clock_id, observed_at = EXCLUDED.observed_at",
        (tenant_id, stripe_customer_id, reading.test_clock_id, _instant(reading.frozen_time)),
    )


def record_clock_time(conn: psycopg.Connection, test_clock_id: str, frozen_time: int) -> int:
    """Move every known customer of the clock forward to `frozen_time` (never back);
    not committed here. Returns how many customers' rows were updated."""
    cur = conn.execute(
        "UPDATE customer_clocks SET frozen_time = greatest(frozen_time, %s),"
        " observed_at = clock_timestamp() WHERE test_clock_id = %s",
        (_instant(frozen_time), test_clock_id),
    )
    return cur.rowcount


def observe(
    conn: psycopg.Connection, gateway: StripeGateway, tenant_id: str, stripe_customer_id: str
) -> int | None:
    """The customer's clock time as the gateway reads it (None: no clock), recorded and
    committed, for the writer's and the reconciler's passes."""
    reading = gateway.customer_clock(stripe_customer_id)
    record_clock(conn, tenant_id, stripe_customer_id, reading)
    conn.commit()
    return reading.frozen_time


def clock_bounds(
    conn: psycopg.Connection, refs: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], BoundClock]:
    """(tenant, customerRef) -> its clock, for the given refs bound to a clock customer.

    One query for all of them (ingest asks once per request, and only for events past the
    wall-clock bound); refs unbound or without a clock are absent.
    """
    pairs = sorted(set(refs))
    if not pairs:
        return {}
    rows = conn.execute(
        "SELECT b.tenant_id, b.customer_ref, b.stripe_customer_id, c.test_clock_id,"
        " c.frozen_time FROM unnest(%s::text[], %s::text[]) AS r(tenant_id, customer_ref)"
        " JOIN customer_bindings b ON b.tenant_id = r.tenant_id"
        "  AND b.customer_ref = r.customer_ref"
        " JOIN customer_clocks c ON c.tenant_id = b.tenant_id"
        "  AND c.stripe_customer_id = b.stripe_customer_id"
        " WHERE c.test_clock_id IS NOT NULL",
        ([t for t, _ in pairs], [c for _, c in pairs]),
    ).fetchall()
    return {
        (str(r[0]), str(r[1])): BoundClock(str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4])
        for r in rows
    }


class ClockRereads:
    """Per-customer rate limit of ingest's on-demand clock reads (thread-safe).

    The limit is for reads that learn nothing: a client sending events truly in the
    future costs one Stripe call per customer per `interval_s`. A read that found the
    clock moved on (`moved`) does not hold back the next: test clocks move in jumps, and
    a client that advances a clock and sends usage at its new time, cycle after cycle,
    must be admitted at once however quickly it does so.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def may_read(self, tenant_id: str, stripe_customer_id: str) -> bool:
        """True (and the read counted) when this customer's clock was not re-read lately."""
        key = (tenant_id, stripe_customer_id)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                return False
            self._last[key] = now
            if len(self._last) > 100_000:  # forget the oldest half; a re-read costs one call
                for old in sorted(self._last, key=self._last.__getitem__)[:50_000]:
                    del self._last[old]
            return True

    def moved(self, tenant_id: str, stripe_customer_id: str) -> None:
        """The last read found this customer's clock moved on: the next may read at once."""
        with self._lock:
            self._last.pop((tenant_id, stripe_customer_id), None)
