"""Ingest's future bound for customers on a Stripe test clock (see `stripemeter.clocks`).

Validation first judges every event against the wall clock, as it always has. Only the
events refused as `future_timestamp` come here: one query finds which of their
(tenant, customerRef)s are bound to a customer on a test clock, and those are judged again
against `max(wall clock, frozen_time) + MAX_FUTURE_SKEW_SECONDS`. An event still beyond
that bound makes the service re-read the customer's clock from Stripe (at most once per
customer every `CLOCK_REREAD_INTERVAL_S`, and once per request) before it is refused with
the same `future_timestamp` error. Requests without a future event cost nothing extra.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stripemeter import clocks
from stripemeter.db.pool import Pool
from stripemeter.errors import GatewayError, InputError
from stripemeter.ingest.validation import ValidEvent
from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.stripe.gateway import StripeGateway

log = logging.getLogger("stripemeter.ingest.clock_bound")
_THROTTLED = ThrottledLog(log, interval_s=60)

Validate = Callable[[Any, datetime], ValidEvent]


def _ref(raw: Any) -> tuple[str, str]:
    return str(raw["tenantId"]), str(raw["customerRef"])


def rejudge_future_events(
    pool: Pool,
    gateway: Callable[[], StripeGateway | None],
    rereads: clocks.ClockRereads,
    raw_events: list[Any],
    items: list[ValidEvent | InputError],
    validate: Validate,
    wall_now: datetime,
) -> None:
    """Judge the `future_timestamp` refusals in `items` again on their customers' clocks;
    replaces each one that a clock admits with its validated event (in place)."""
    future = [
        i
        for i, item in enumerate(items)
        if isinstance(item, InputError) and item.code == "future_timestamp"
    ]
    if not future:
        return
    with pool.connection() as conn:
        bounds = clocks.clock_bounds(conn, (_ref(raw_events[i]) for i in future))
        conn.commit()
        if not bounds:
            return
        read_now: dict[tuple[str, str], int | None] = {}
        for i in future:
            bound = bounds.get(_ref(raw_events[i]))
            if bound is None:
                continue
            key = (bound.tenant_id, bound.stripe_customer_id)
            frozen = read_now.get(key) if key in read_now else _unix(bound.frozen_time)
            if _admit(items, i, raw_events[i], validate, wall_now, frozen):
                continue
            if key in read_now or not rereads.may_read(*key):
                continue
            read_now[key] = fresh = _reread(conn, gateway, bound)
            if fresh is not None and (frozen is None or fresh > frozen):
                rereads.moved(*key)
            _admit(items, i, raw_events[i], validate, wall_now, fresh)


def _unix(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


def _admit(
    items: list[ValidEvent | InputError],
    index: int,
    raw: Any,
    validate: Validate,
    wall_now: datetime,
    frozen: int | None,
) -> bool:
    if frozen is None or frozen <= wall_now.timestamp():
        return False
    try:
        items[index] = validate(raw, datetime.fromtimestamp(clocks.customer_now(frozen), UTC))
    except InputError as exc:
        items[index] = exc
        return False
    return True


def _reread(
    conn: Any, gateway: Callable[[], StripeGateway | None], bound: clocks.BoundClock
) -> int | None:
    """The customer's frozen time read from Stripe now (recorded), None when unreadable."""
    client = gateway()
    if client is None:
        return None
    try:
        reading = client.read_customer_clock(bound.stripe_customer_id)
    except GatewayError as exc:
        _THROTTLED.warning(
            "reread",
            "ingest: could not re-read the test clock of %s: %s",
            bound.stripe_customer_id,
            exc,
        )
        return None
    if reading is None:
        return None
    clocks.record_clock(conn, bound.tenant_id, bound.stripe_customer_id, reading)
    conn.commit()
    return reading.frozen_time
