"""The writer's per-customer work: which buckets changed, what to push, and recording it.

`push_customer` runs under the caller's (mapping, customer) advisory lock. It reads the
customer's dirty buckets, computes each one's whole-unit target (see `stripemeter.writer`
for the values per aggregation), sends one meter event per change and writes
`write_log` only after Stripe accepted it.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row

from stripemeter import worker_state
from stripemeter.identifiers import idempotency_key, meter_event_identifier
from stripemeter.mapping_meters import Mapping, resolve_stripe_customer
from stripemeter.periods import meter_event_timestamp, to_unix, too_old
from stripemeter.stripe_gateway import (
    GatewayError,
    InvoicePeriod,
    ItemInfo,
    MeterInfo,
    StripeGateway,
    StripeUnavailable,
)
from stripemeter.writer_metrics import EVENTS_SENT

log = logging.getLogger("stripemeter.writer")


# Test hook: exit the process (no cleanup) right after Stripe accepted this many meter
# events and before write_log records the last one — the crash exactly-once must survive.
CRASH_HOOK_ENV = "STRIPEMETER_WRITER_CRASH_AFTER_ACCEPTS"
_accepted_in_process = 0
_accepted_lock = threading.Lock()

_AGG_COLUMN = {"sum": "b.total", "max": "b.max_value", "last": "b.last_value"}
# max mappings look this far back when recomputing running maxima (Stripe takes 35 days).
_MAX_LOOKBACK = "40 days"


@dataclass
class PushResult:
    """What one `push_pending` pass did."""

    events_sent: int = 0
    duplicates: int = 0
    units_pushed: Decimal = Decimal(0)
    post_close: int = 0
    too_old: int = 0
    deferred: int = 0
    locked_elsewhere: int = 0
    errors: list[str] = field(default_factory=list)

    def merge(self, other: PushResult) -> None:
        """Add another pass's (or customer's) counts to this one."""
        self.events_sent += other.events_sent
        self.duplicates += other.duplicates
        self.units_pushed += other.units_pushed
        self.post_close += other.post_close
        self.too_old += other.too_old
        self.deferred += other.deferred
        self.locked_elsewhere += other.locked_elsewhere
        self.errors.extend(other.errors)

    @property
    def stripe_failing(self) -> bool:
        """Whether the pass stopped because Stripe kept failing."""
        return any(e.startswith("stripe unavailable") for e in self.errors)


@dataclass(frozen=True)
class _CustomerContext:
    customer_id: str
    frozen_time: int | None
    item: ItemInfo | None
    periods: list[InvoicePeriod]

    def closed(self, hour: int) -> bool:
        return any(p.finalized and p.start <= hour < p.end for p in self.periods)

    def boundaries(self) -> list[int]:
        starts = {p.start for p in self.periods}
        if self.item is not None:
            starts.add(self.item.period_start)
        return sorted(starts)


def floor_units(value: Decimal | None) -> Decimal:
    """Whole units of a local value (Stripe meter values are whole numbers)."""
    if value is None:
        return Decimal(0)
    return value.to_integral_value(rounding=ROUND_FLOOR)


def note_error(result: PushResult, exc: GatewayError, customer_ref: str | None = None) -> str:
    prefix = "stripe unavailable" if isinstance(exc, StripeUnavailable) else "stripe refused"
    where = f" (customer {customer_ref})" if customer_ref else ""
    message = f"{prefix}{where}: {exc}"
    result.errors.append(message)
    log.warning("writer: %s", message)
    return message


def _dirty_condition(mapping: Mapping) -> str:
    column = _AGG_COLUMN[mapping.aggregation]
    return (
        "(w.mapping_id IS NULL OR (w.status = 'pushed'"
        f" AND w.source_value IS DISTINCT FROM floor(coalesce({column}, 0))))"
    )


def dirty_customers(conn: psycopg.Connection, mapping: Mapping) -> list[str]:
    rows = conn.execute(
        "SELECT DISTINCT b.customer_ref FROM usage_buckets b"
        " LEFT JOIN write_log w ON w.mapping_id = %s AND w.customer_ref = b.customer_ref"
        "  AND w.hour_start = b.hour_start"
        f" WHERE b.tenant_id = %s AND b.metric = %s AND {_dirty_condition(mapping)}"
        " ORDER BY 1",
        (mapping.id, mapping.tenant_id, mapping.metric),
    ).fetchall()
    conn.commit()
    return [str(r[0]) for r in rows]


def _customer_rows(
    conn: psycopg.Connection, mapping: Mapping, customer_ref: str
) -> list[dict[str, Any]]:
    """The customer's buckets to consider, with their write_log state, oldest first."""
    where = (
        f"b.hour_start >= now() - interval '{_MAX_LOOKBACK}'"
        if mapping.aggregation == "max"
        else _dirty_condition(mapping)
    )
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT b.hour_start, b.total, b.max_value, b.last_value,"
            " w.mapping_id IS NOT NULL AS logged, coalesce(w.pushed_value, 0) AS pushed,"
            " w.source_value, coalesce(w.push_count, 0) AS push_count, w.status"
            " FROM usage_buckets b"
            " LEFT JOIN write_log w ON w.mapping_id = %s AND w.customer_ref = b.customer_ref"
            "  AND w.hour_start = b.hour_start"
            f" WHERE b.tenant_id = %s AND b.metric = %s AND b.customer_ref = %s AND {where}"
            " ORDER BY b.hour_start",
            (mapping.id, mapping.tenant_id, mapping.metric, customer_ref),
        )
        rows = cur.fetchall()
    conn.commit()
    return rows


def _targets(mapping: Mapping, rows: list[dict[str, Any]], ctx: _CustomerContext) -> None:
    """Annotate rows with `source` (the bucket's own whole value) and `target`."""
    if mapping.aggregation == "sum":
        for row in rows:
            row["source"] = row["target"] = floor_units(row["total"])
        return
    if mapping.aggregation == "last":
        for row in rows:
            row["source"] = row["target"] = floor_units(row["last_value"])
        return
    boundaries = ctx.boundaries()
    running: Decimal | None = None
    segment: int | None = None
    for row in rows:
        hour = to_unix(row["hour_start"])
        current = max((b for b in boundaries if b <= hour), default=None)
        if current != segment:
            segment, running = current, None
        own = floor_units(row["max_value"])
        running = own if running is None else max(running, own)
        row["source"], row["target"] = own, running


def _context(gateway: StripeGateway, mapping: Mapping, customer_id: str) -> _CustomerContext:
    frozen = gateway.clock_time(customer_id)
    item = gateway.find_item(customer_id, mapping.price_id, mapping.subscription_item_id)
    periods = gateway.invoice_periods(item.subscription_id, mapping.price_id) if item else []
    if item is not None:  # only earlier periods are billed; the current one is open
        periods = [p for p in periods if p.start < item.period_start]
    return _CustomerContext(customer_id, frozen, item, periods)


def push_customer(
    conn: psycopg.Connection,
    gateway: StripeGateway,
    mapping: Mapping,
    meter: MeterInfo,
    customer_ref: str,
    result: PushResult,
) -> None:
    rows = _customer_rows(conn, mapping, customer_ref)
    if not rows:
        return
    ctx = _context(gateway, mapping, resolve_stripe_customer(mapping, customer_ref))
    _targets(mapping, rows, ctx)
    real_now = int(time.time())
    for row in rows:
        if row["logged"] and row["status"] != "pushed":
            continue
        source, target, pushed = row["source"], row["target"], Decimal(row["pushed"])
        if row["logged"] and row["source_value"] == source and pushed == target:
            continue
        hour_start: datetime = row["hour_start"]
        hour = to_unix(hour_start)
        if ctx.closed(hour):
            _mark(conn, mapping, customer_ref, row, "post_close")
            result.post_close += 1
            continue
        if too_old(hour, real_now):
            _mark(conn, mapping, customer_ref, row, "too_old")
            result.too_old += 1
            continue
        is_sum = mapping.aggregation == "sum"
        if target == pushed and (is_sum or row["logged"]):
            _record(conn, mapping, customer_ref, row, pushed, source, None)
            continue
        push_number = int(row["push_count"]) + 1
        timestamp = meter_event_timestamp(
            hour, 0 if is_sum else push_number, frozen_time=ctx.frozen_time, real_now=real_now
        )
        if timestamp is None:
            result.deferred += 1
            continue
        value = int(target - pushed) if is_sum else int(target)
        identifier = meter_event_identifier(
            mapping.tenant_id,
            mapping.metric,
            meter.event_name,
            customer_ref,
            hour_start,
            target,
            None if is_sum else push_number,
        )
        outcome = gateway.send_meter_event(
            meter,
            customer_id=ctx.customer_id,
            value=value,
            timestamp=timestamp,
            identifier=identifier,
            idempotency_key=functools.partial(idempotency_key, identifier, timestamp, value),
        )
        _crash_hook()
        _record(conn, mapping, customer_ref, row, target, source, identifier, commit=False)
        worker_state.record_push(conn, mapping.tenant_id)
        conn.commit()
        EVENTS_SENT.labels(outcome=outcome).inc()
        if outcome == "accepted":
            result.events_sent += 1
        else:
            result.duplicates += 1
        result.units_pushed += Decimal(value) if is_sum else Decimal(0)


def _record(
    conn: psycopg.Connection,
    mapping: Mapping,
    customer_ref: str,
    row: dict[str, Any],
    pushed: Decimal,
    source: Decimal,
    identifier: str | None,
    *,
    commit: bool = True,
) -> None:
    """Write what Stripe now holds for the bucket (after acceptance only)."""
    conn.execute(
        "INSERT INTO write_log (mapping_id, tenant_id, metric, customer_ref, hour_start,"
        " pushed_value, source_value, push_count, last_identifier, last_pushed_at, status)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
        "  CASE WHEN %s::text IS NULL THEN NULL ELSE now() END, 'pushed')"
        " ON CONFLICT (mapping_id, customer_ref, hour_start) DO UPDATE SET"
        " pushed_value = EXCLUDED.pushed_value, source_value = EXCLUDED.source_value,"
        " push_count = EXCLUDED.push_count,"
        " last_identifier = coalesce(EXCLUDED.last_identifier, write_log.last_identifier),"
        " last_pushed_at = coalesce(EXCLUDED.last_pushed_at, write_log.last_pushed_at),"
        " status = 'pushed', updated_at = now()",
        (
            mapping.id,
            mapping.tenant_id,
            mapping.metric,
            customer_ref,
            row["hour_start"],
            pushed,
            source,
            int(row["push_count"]) + (1 if identifier else 0),
            identifier,
            identifier,
        ),
    )
    if commit:
        conn.commit()


def _mark(
    conn: psycopg.Connection, mapping: Mapping, customer_ref: str, row: dict[str, Any], status: str
) -> None:
    """Stop pushing a bucket: its period is invoiced (post_close) or it is too old."""
    conn.execute(
        "INSERT INTO write_log (mapping_id, tenant_id, metric, customer_ref, hour_start,"
        " pushed_value, source_value, push_count, status)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (mapping_id, customer_ref, hour_start) DO UPDATE SET"
        " source_value = EXCLUDED.source_value, status = EXCLUDED.status, updated_at = now()",
        (
            mapping.id,
            mapping.tenant_id,
            mapping.metric,
            customer_ref,
            row["hour_start"],
            Decimal(row["pushed"]),
            row["source"],
            int(row["push_count"]),
            status,
        ),
    )
    conn.commit()


def _crash_hook() -> None:
    limit = os.environ.get(CRASH_HOOK_ENV)
    if not limit:
        return
    global _accepted_in_process
    with _accepted_lock:
        _accepted_in_process += 1
        if _accepted_in_process >= int(limit):
            log.error("writer: %s reached, exiting before write_log update", CRASH_HOOK_ENV)
            os._exit(70)
