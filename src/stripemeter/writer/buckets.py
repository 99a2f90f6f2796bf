"""The writer's per-customer work: re-send the outbox, then push what is not covered.

`push_customer` runs under the caller's per-customer lock. It first sends the customer's
pending outbox rows again, each with its own identifier (Stripe refuses a duplicate,
which counts as sent). Then it reads the customer's buckets the outbox does not cover
(`BucketRow`; for `max` every bucket of the last 40 days and for `sum` every bucket of
the periods they are in, since a running maximum and a carried fraction depend on the
period's other hours), computes
each one's whole-unit target (`PushPlan`; see `stripemeter.writer.passes` for the values
per aggregation kind), and for each change
commits an outbox row *before* sending it and marks the row sent after Stripe answered.
A crash, a timeout or a stored-then-500 therefore leaves a pending row that the next
pass sends again under the same identifier, and new usage in the same hour becomes a
new row for the new units only.

Stripe customers come from the tenant's bindings (`stripemeter.mappings.bindings`): usage of a
customerRef that is not bound to the tenant stays in the ledger and is not pushed.

A Stripe failure is recorded on the pass's `PushResult` as a `PushFailure` whose
`StripeFailure` kind says whether Stripe is out (the pass stops, readiness degrades) or
refused (that mapping or customer waits, the rest go on).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from enum import Enum

import psycopg
from psycopg.rows import dict_row

from stripemeter import clocks
from stripemeter.aggregations import Aggregation, PushMode
from stripemeter.errors import (
    GatewayError,
    StripeKeyRefused,
    StripeRefused,
    StripeUnavailable,
)
from stripemeter.mappings.bindings import stripe_customer_for
from stripemeter.mappings.meters import Mapping
from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.periods import from_unix, meter_event_timestamp, to_unix, too_old
from stripemeter.stripe.gateway import InvoicePeriod, ItemInfo, MeterInfo, StripeGateway
from stripemeter.workers import state as worker_state
from stripemeter.writer.identifiers import idempotency_key
from stripemeter.writer.outbox import (
    OutboxRow,
    Series,
    SeriesSource,
    add_push,
    mark_attempt_failed,
    mark_sent,
    pending_rows,
    quarantine,
    record_source,
    sent_units_in_hour,
)
from stripemeter.writer.pending import state_join, uncovered_condition
from stripemeter.writer.status import EVENTS_SENT

log = logging.getLogger("stripemeter.writer.passes")
# Keys are kinds of failure ("stripe unavailable", "unbound:<tenant>"), never customers.
_THROTTLED = ThrottledLog(log)

# Test hook: exit the process (no cleanup) right after Stripe accepted this many meter
# events and before the outbox row is marked sent — the crash exactly-once must survive.
CRASH_HOOK_ENV = "STRIPEMETER_WRITER_CRASH_AFTER_ACCEPTS"
_accepted_in_process = 0
_accepted_lock = threading.Lock()

# Test seam: called with (stage, row) at "committed", "before_send", "unanswered" (Stripe
# kept failing) and "answered";
# a test raises from it to simulate a process dying right there.
STAGE_HOOK: Callable[[str, OutboxRow], None] | None = None

# Stripe keeps identifiers for "at least 24 hours"; a row first tried longer ago than
# this is re-sent only after Stripe's meter summary says it did not land.
IDENTIFIER_TRUST_S = 20 * 3600

# Running-maximum kinds look this far back when recomputing the maxima (Stripe takes 35
# days).
_LOOKBACK = "40 days"


class StripeFailure(Enum):
    """What kind of Stripe failure stopped a push; the value heads its message."""

    UNAVAILABLE = "stripe unavailable"  # an outage: the pass stops, readiness degrades
    REFUSED = "stripe refused"  # a refusal of this mapping or customer; others go on

    @classmethod
    def of(cls, exc: GatewayError) -> StripeFailure:
        """The kind of a gateway error."""
        return cls.UNAVAILABLE if isinstance(exc, StripeUnavailable) else cls.REFUSED


@dataclass(frozen=True)
class PushFailure:
    """One Stripe failure of a pass: its kind and the message kept for the operator."""

    kind: StripeFailure
    message: str

    @property
    def outage(self) -> bool:
        """Whether Stripe was unavailable (rather than refusing)."""
        return self.kind is StripeFailure.UNAVAILABLE


@dataclass
class PushResult:
    """What one `push_pending` pass did."""

    events_sent: int = 0
    duplicates: int = 0
    found: int = 0
    units_pushed: Decimal = Decimal(0)
    post_close: int = 0
    too_old: int = 0
    deferred: int = 0
    locked_elsewhere: int = 0
    quarantined: int = 0
    unbound: int = 0
    # Customers flushed at once because a draft invoice closes a period of their pending
    # usage (`passes.push_customer_now`), and the (tenant, customerRef) pairs whose
    # Stripe reads showed such a draft in this push.
    flushed: int = 0
    closing: set[tuple[str, str]] = field(default_factory=set)
    failures: list[PushFailure] = field(default_factory=list)
    stripe_failing: bool = False

    @property
    def errors(self) -> list[str]:
        """The failures' messages, oldest first."""
        return [failure.message for failure in self.failures]

    def merge(self, other: PushResult) -> None:
        """Add another pass's (or customer's) counts to this one."""
        self.events_sent += other.events_sent
        self.duplicates += other.duplicates
        self.found += other.found
        self.units_pushed += other.units_pushed
        self.post_close += other.post_close
        self.too_old += other.too_old
        self.deferred += other.deferred
        self.locked_elsewhere += other.locked_elsewhere
        self.quarantined += other.quarantined
        self.unbound += other.unbound
        self.flushed += other.flushed
        self.closing |= other.closing
        self.failures.extend(other.failures)
        self.stripe_failing = self.stripe_failing or other.stripe_failing

    @property
    def moved(self) -> int:
        """Outbox rows this pass settled (sent, duplicate, found, or quarantined)."""
        return self.events_sent + self.duplicates + self.found + self.quarantined


@dataclass(frozen=True)
class _CustomerContext:
    customer_id: str
    frozen_time: int | None
    item: ItemInfo | None
    periods: list[InvoicePeriod]

    def closed(self, hour: int) -> bool:
        return any(p.finalized and p.start <= hour < p.end for p in self.periods)

    def closing(self, hour: int) -> bool:
        """Whether a draft invoice bills the period of `hour`: it ended, and Stripe
        finalizes the draft (recounting its usage) about an hour later."""
        return any(p.status == "draft" and p.start <= hour < p.end for p in self.periods)

    def boundaries(self) -> list[int]:
        """Where billing periods start: the invoiced ones', the current one's, and the
        next one's (the current period's end)."""
        starts = {p.start for p in self.periods}
        if self.item is not None:
            starts.update((self.item.period_start, self.item.period_end))
        return sorted(starts)

    def period_of(self, hour: int) -> int | None:
        """The start of the billing period holding `hour` (None: before every known one)."""
        return max((b for b in self.boundaries() if b <= hour), default=None)


def floor_units(value: Decimal | None) -> Decimal:
    """Whole units of a local value (Stripe meter values are whole numbers)."""
    if value is None:
        return Decimal(0)
    return value.to_integral_value(rounding=ROUND_FLOOR)


@dataclass(frozen=True)
class BucketRow:
    """One hour bucket of a customer, with its series' state on the mapping's meter."""

    hour_start: datetime
    value: Decimal | None  # the bucket's value of the mapping's kind
    logged: bool  # the series exists
    covered: Decimal
    source_value: Decimal | None
    push_count: int
    status: str | None
    uncovered: bool  # `uncovered_condition`: the outbox does not account for it yet


@dataclass(frozen=True)
class PushPlan:
    """A bucket and what its series should cover."""

    bucket: BucketRow
    source: Decimal  # the value the series accounts for (`Aggregation.accounted`)
    # What the series should cover: the whole value, the running maximum, or (carried
    # fractions) the bucket's share of the period's whole units.
    target: Decimal


def note_error(
    result: PushResult, exc: GatewayError, customer_ref: str | None = None
) -> PushFailure:
    """Record a Stripe failure on the result (logged at most once a minute per kind)."""
    kind = StripeFailure.of(exc)
    where = f" (customer {customer_ref})" if customer_ref else ""
    failure = PushFailure(kind, f"{kind.value}{where}: {exc}")
    result.failures.append(failure)
    result.stripe_failing = result.stripe_failing or failure.outage
    _THROTTLED.warning(kind.value, "writer: %s", failure.message)
    return failure


_STATE_JOIN = state_join("%(event)s")


def dirty_customers(conn: psycopg.Connection, mapping: Mapping, meter: MeterInfo) -> list[str]:
    """The mapping's customers with a bucket the outbox does not cover yet."""
    rows = conn.execute(
        f"SELECT DISTINCT b.customer_ref FROM usage_buckets b{_STATE_JOIN}"
        f" WHERE b.tenant_id = %(t)s AND b.metric = %(m)s"
        f" AND {uncovered_condition(mapping.kind.accounted_value())}"
        " ORDER BY 1",
        {"event": meter.event_name, "t": mapping.tenant_id, "m": mapping.metric},
    ).fetchall()
    conn.commit()
    return [str(r[0]) for r in rows]


def _customer_rows(
    conn: psycopg.Connection,
    mapping: Mapping,
    meter: MeterInfo,
    customer_ref: str,
    *,
    since: datetime | None = None,
) -> list[BucketRow]:
    """The customer's buckets to consider, with their series state, oldest first.

    Those the outbox does not cover; for a running maximum every bucket of the last
    `_LOOKBACK`; with `since`, every bucket from then on (a carried fraction depends on
    all of its period's hours).
    """
    kind = mapping.kind
    uncovered = uncovered_condition(kind.accounted_value())
    if since is not None:
        where = "b.hour_start >= %(since)s"
    elif kind.running_max:
        where = f"b.hour_start >= now() - interval '{_LOOKBACK}'"
    else:
        where = uncovered
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT b.hour_start, {kind.bucket_value()} AS value,"
            " s.tenant_id IS NOT NULL AS logged, coalesce(s.covered, 0) AS covered,"
            " s.source_value, coalesce(s.push_count, 0) AS push_count, s.status,"
            f" {uncovered} AS uncovered"
            f" FROM usage_buckets b{_STATE_JOIN}"
            " WHERE b.tenant_id = %(t)s AND b.metric = %(m)s AND b.customer_ref = %(c)s"
            f" AND {where} ORDER BY b.hour_start",
            {
                "event": meter.event_name,
                "t": mapping.tenant_id,
                "m": mapping.metric,
                "c": customer_ref,
                "since": since,
            },
        )
        rows = [BucketRow(**row) for row in cur.fetchall()]
    conn.commit()
    return rows


def _plans(
    kind: Aggregation,
    rows: list[BucketRow],
    ctx: _CustomerContext,
    pushable: Callable[[BucketRow], bool],
) -> list[PushPlan]:
    """Each bucket's accounted value and its target: the running maximum per period for
    kinds that bill one, the bucket's share of the period's whole units for kinds that
    carry fractions, else the bucket's own whole value."""
    if kind.carries_fractions:
        plans: list[PushPlan] = []
        for period_rows in _by_period(rows, ctx):
            plans.extend(_carried_plans(kind, period_rows, pushable))
        return plans
    if not kind.running_max:
        return [PushPlan(row, floor_units(row.value), floor_units(row.value)) for row in rows]
    plans = []
    for period_rows in _by_period(rows, ctx):
        running: Decimal | None = None
        for row in period_rows:
            own = floor_units(row.value)
            running = own if running is None else max(running, own)
            plans.append(PushPlan(row, own, running))
    return plans


def _by_period(rows: list[BucketRow], ctx: _CustomerContext) -> list[list[BucketRow]]:
    """`rows` (oldest first) cut into runs of one billing period each."""
    runs: list[list[BucketRow]] = []
    current: object = object()
    for row in rows:
        period = ctx.period_of(to_unix(row.hour_start))
        if not runs or period != current:
            runs.append([])
            current = period
        runs[-1].append(row)
    return runs


def _carried_plans(
    kind: Aggregation, rows: list[BucketRow], pushable: Callable[[BucketRow], bool]
) -> list[PushPlan]:
    """Targets for one billing period's buckets (oldest first) whose fractions carry.

    An hour's share is floor(running period total through it) - floor(running total
    through the previous hour), so the shares add up to floor(period total). What the
    outbox covers never shrinks (Stripe keeps what it was sent), and a late event in an
    earlier hour moves shares between hours: so only the units the period still lacks,
    floor(period total) - everything covered, are added, to the pushable hours whose
    share exceeds their coverage, oldest first (any left, e.g. because such an hour is
    beyond Stripe's 35 days, go to the latest pushable hour: every hour of the period
    bills the same invoice). The period's final remainder (< 1 unit) is never pushed.

    `rows` are every bucket of the period (`push_customer` reads them from the start
    of the earliest period holding an uncovered one), so after a pass the period's
    outbox covers exactly floor(period total), whatever the period's length.
    """
    running = Decimal(0)
    whole_before = Decimal(0)
    shares: list[Decimal] = []
    for row in rows:
        running += row.value or 0
        whole = floor_units(running)
        shares.append(whole - whole_before)
        whole_before = whole
    lacking = whole_before - sum((row.covered for row in rows), Decimal(0))
    targets = [row.covered for row in rows]
    eligible = [i for i, row in enumerate(rows) if pushable(row)]
    for i in eligible:
        if lacking <= 0:
            break
        take = min(lacking, max(shares[i] - rows[i].covered, Decimal(0)))
        targets[i] += take
        lacking -= take
    if lacking > 0 and eligible:
        targets[eligible[-1]] += lacking
    return [
        PushPlan(row, kind.accounted(row.value), target)
        for row, target in zip(rows, targets, strict=True)
    ]


def _context(
    conn: psycopg.Connection, gateway: StripeGateway, mapping: Mapping, customer_id: str
) -> _CustomerContext:
    frozen = clocks.observe(conn, gateway, mapping.tenant_id, customer_id)
    item = gateway.find_item(customer_id, mapping.price_id, mapping.subscription_item_id)
    periods = gateway.invoice_periods(item.subscription_id, mapping.price_id) if item else []
    if item is not None and not item.ended:  # earlier periods are billed; the current is open
        periods = [p for p in periods if p.start < item.period_start]
    return _CustomerContext(customer_id, frozen, item, periods)


def push_customer(
    conn: psycopg.Connection,
    gateway: StripeGateway,
    mapping: Mapping,
    meter: MeterInfo,
    customer_ref: str,
    result: PushResult,
    *,
    send_now: bool = True,
) -> None:
    """Re-send the customer's outbox, then turn its uncovered buckets into new rows.

    Runs under the caller's per-customer lock. No transaction is open across a Stripe
    call: every outbox write is committed before the send it announces. With
    `send_now=False` (the v2 transport) the rows are only written: the caller sends
    every customer's pending rows afterwards in batches (`stripemeter.writer.stream`).
    """
    stripe_customer = stripe_customer_for(conn, mapping.tenant_id, customer_ref)
    conn.commit()
    if stripe_customer is None:
        result.unbound += 1
        _THROTTLED.warning(
            f"unbound:{mapping.tenant_id}",
            "writer: usage for customerRef(s) not bound to a Stripe customer is kept and"
            " not pushed; bind them with PUT /v1/customers/{customerRef}/binding",
        )
        return
    if send_now:
        send_pending(conn, gateway, mapping.tenant_id, customer_ref, result)
    rows = _customer_rows(conn, mapping, meter, customer_ref)
    if not rows or not (mapping.kind.running_max or any(row.uncovered for row in rows)):
        return
    ctx = _context(conn, gateway, mapping, stripe_customer)
    if mapping.kind.carries_fractions:
        # Every bucket of the periods from the earliest uncovered one's: a carried
        # fraction depends on all the hours of its period. (Hours before every period
        # Stripe names bill on no invoice; they carry from the earliest uncovered one.)
        earliest = to_unix(rows[0].hour_start)
        start = ctx.period_of(earliest)
        since = from_unix(earliest if start is None else start)
        rows = _customer_rows(conn, mapping, meter, customer_ref, since=since)
    real_now = int(time.time())
    delta = mapping.kind.push is PushMode.DELTA

    if any(row.uncovered and ctx.closing(to_unix(row.hour_start)) for row in rows):
        result.closing.add((mapping.tenant_id, customer_ref))

    def pushable(row: BucketRow) -> bool:
        hour = to_unix(row.hour_start)
        active = not row.logged or row.status == "active"
        return active and not ctx.closed(hour) and not too_old(hour, real_now)

    # Every row and accounting of this pass is committed together, before any send: a
    # carried share depends on the whole period, so accounting one hour's bucket (its
    # source) without the rows the same plan gave its other hours would lose those units
    # if the process died in between (nothing would look uncovered afterwards).
    staged: list[OutboxRow] = []
    for plan in _plans(mapping.kind, rows, ctx, pushable):
        row, source, target, covered = plan.bucket, plan.source, plan.target, plan.bucket.covered
        if row.logged and row.status != "active":
            continue
        if row.logged and row.source_value == source and covered == target:
            continue
        series = Series(
            mapping.tenant_id, mapping.metric, customer_ref, row.hour_start, meter.event_name
        )
        accounts = SeriesSource(stripe_customer, mapping.id, mapping.aggregation, source)
        hour = to_unix(row.hour_start)
        if ctx.closed(hour) or too_old(hour, real_now):
            status = "post_close" if ctx.closed(hour) else "too_old"
            record_source(conn, series, accounts, covered=covered, status=status)
            if status == "post_close":
                result.post_close += 1
            else:
                result.too_old += 1
            continue
        # Deltas are computed against everything the outbox already covers (sent or
        # not); absolute values are pushed once per change.
        if (delta and target <= covered) or (not delta and row.logged and target == covered):
            record_source(conn, series, accounts, covered=covered)
            continue
        timestamp = meter_event_timestamp(
            hour,
            0 if delta else row.push_count + 1,
            frozen_time=ctx.frozen_time,
            real_now=real_now,
        )
        if timestamp is None:
            result.deferred += 1
            continue
        push = add_push(
            conn,
            series,
            accounts,
            meter=meter,
            value=int(target - covered) if delta else int(target),
            covered_after=target,
            event_ts=timestamp,
        )
        staged.append(push)
    conn.commit()
    for push in staged:
        stage("committed", push)
        if send_now:
            send_row(conn, gateway, push, result)


def send_pending(
    conn: psycopg.Connection,
    gateway: StripeGateway,
    tenant_id: str,
    customer_ref: str,
    result: PushResult,
) -> None:
    """Send the customer's unsent outbox rows, oldest first, each with its own identifier.

    Raises StripeUnavailable when Stripe keeps failing (the rest stay pending).
    """
    rows = pending_rows(conn, tenant_id, customer_ref)
    conn.commit()
    for row in rows:
        send_row(conn, gateway, row, result, resend=True)


def send_row(
    conn: psycopg.Connection,
    gateway: StripeGateway,
    row: OutboxRow,
    result: PushResult,
    *,
    resend: bool = False,
) -> None:
    """Send one outbox row and mark it sent, or quarantined when Stripe refuses it.

    A row first tried longer ago than `IDENTIFIER_TRUST_S` may be past Stripe's 24 h
    identifier window, where a re-send would count twice: then Stripe's meter summary
    for that hour decides whether the event already landed.
    """
    if resend and beyond_identifier_window(row) and landed(conn, gateway, row):
        mark_sent(conn, row, "found")
        conn.commit()
        result.found += 1
        return
    stage("before_send", row)
    try:
        outcome = gateway.send_meter_event(
            row.meter(),
            customer_id=row.stripe_customer_id,
            value=row.value,
            timestamp=row.event_ts,
            identifier=row.identifier,
            idempotency_key=functools.partial(
                _attempt_key, row.identifier, row.event_ts, row.value, row.attempts
            ),
        )
    except StripeUnavailable as exc:
        stage("unanswered", row)
        mark_attempt_failed(conn, row, str(exc))
        conn.commit()
        raise
    except StripeKeyRefused as exc:
        # The key (revoked, or lacking a permission), not the event, is wrong: the row
        # stays pending for when it is fixed (quarantining would drop it from every pass).
        mark_attempt_failed(conn, row, str(exc))
        conn.commit()
        raise
    except StripeRefused as exc:
        quarantine(conn, row, f"{exc.code or 'refused'}: {exc}")
        conn.commit()
        result.quarantined += 1
        _THROTTLED.warning(
            f"quarantined:{row.series.tenant_id}",
            "writer: Stripe refused meter event %s (customer %s); quarantined: %s",
            row.identifier,
            row.series.customer_ref,
            exc,
        )
        return
    stage("answered", row)
    crash_hook()
    mark_sent(conn, row, outcome)
    worker_state.record_push(conn, row.series.tenant_id)
    conn.commit()
    EVENTS_SENT.labels(outcome=outcome).inc()
    if outcome == "accepted":
        result.events_sent += 1
        result.units_pushed += Decimal(row.value)
    else:
        result.duplicates += 1


def _customer_lock_key(tenant_id: str, customer_ref: str) -> str:
    return f"stripemeter-writer:{tenant_id}:{customer_ref}"


def try_customer_lock(conn: psycopg.Connection, tenant_id: str, customer_ref: str) -> bool:
    """Take the (tenant, customer) session advisory lock if it is free (committed).

    One lock per customer covers every mapping of it and its pending outbox rows, so
    two writers never send or compute for the same customer at once.
    """
    got = conn.execute(
        "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
        (_customer_lock_key(tenant_id, customer_ref),),
    ).fetchone()
    conn.commit()
    return bool(got and got[0])


def release_customer_lock(conn: psycopg.Connection, tenant_id: str, customer_ref: str) -> None:
    """Release what `try_customer_lock` took (a closed connection released it already)."""
    if not conn.closed:
        conn.execute(
            "SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
            (_customer_lock_key(tenant_id, customer_ref),),
        )
        conn.commit()


def _attempt_key(identifier: str, timestamp: int, value: int, attempts: int, tag: str) -> str:
    # A fresh key per recorded attempt: Stripe replays a stored 5xx for a reused key.
    return idempotency_key(identifier, timestamp, value, f"a{attempts}{tag}")


def beyond_identifier_window(row: OutboxRow) -> bool:
    """Whether the row was first tried longer ago than Stripe surely keeps identifiers."""
    if row.first_attempt_at is None:
        return False
    age = time.time() - row.first_attempt_at.timestamp()
    return age > IDENTIFIER_TRUST_S


def landed(conn: psycopg.Connection, gateway: StripeGateway, row: OutboxRow) -> bool:
    """Whether Stripe's summary for the row's hour already holds the row's units.

    Only rows to a `sum` meter (deltas: sum and count mappings) can double count;
    max/last rows carry absolute values at fixed timestamps, so sending one again
    changes nothing Stripe bills.
    """
    hour = to_unix(row.series.hour_start)
    known = sent_units_in_hour(conn, row)
    conn.commit()
    try:
        meter_formula = gateway.meter_formula(row.meter_id)
    except StripeRefused:
        return False
    if meter_formula != "sum":
        return False
    held = gateway.meter_total(row.meter_id, row.stripe_customer_id, hour, hour + 3600)
    return held >= known + row.value


def stage(name: str, row: OutboxRow) -> None:
    """Test seam: `STAGE_HOOK(stage, row)` may raise to simulate a crash right there."""
    hook = STAGE_HOOK
    if hook is not None:
        hook(name, row)


def crash_hook() -> None:
    """Test seam: exit once Stripe took `STRIPEMETER_WRITER_CRASH_AFTER_ACCEPTS` events."""
    from stripemeter.config import get_settings

    limit = get_settings().STRIPEMETER_WRITER_CRASH_AFTER_ACCEPTS
    if limit is None:
        return
    global _accepted_in_process
    with _accepted_lock:
        _accepted_in_process += 1
        if _accepted_in_process >= limit:
            log.error("writer: %s reached, exiting before the outbox row is marked", CRASH_HOOK_ENV)
            os._exit(70)
