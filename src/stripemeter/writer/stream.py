"""The v2 transport: pending outbox rows of all customers, up to 100 per stream request.

With `WRITER_TRANSPORT=v2` a pass first writes the outbox rows of every dirty customer
exactly as v1 computes them (`push_customer(..., send_now=False)`, under each customer's
lock), then `send_pending_batches` sends every pending row, oldest first, in requests of
up to 100 events of any customers on Stripe's v2 meter event stream
(`StripeGateway.send_meter_event_batch`; facts in docs/writer-transports.md).

Exactly once holds by the same outbox and the same identifiers as v1: a row is committed
before any request carries it and marked sent only after Stripe took the whole request,
and a row sent again (a crash after Stripe took the batch, a 500 after Stripe stored it)
carries its own identifier, which Stripe drops as already known. A request's customers are
locked while it is in flight, so two writers never send the same customer's rows at once.

Per row, not per batch:

- a row Stripe's asynchronous validation would drop for a rule we know (a value of more
  than `STRIPE_MAX_DIGITS` digits) is quarantined before sending; the rest go;
- a request Stripe refuses (4xx) is split in halves until the refused row is alone: that
  row is quarantined, every other row is sent;
- the >20 h rule of v1 holds: a row first tried longer ago is sent again only when
  Stripe's meter summary lacks it.

Stripe answers the stream with `{}`: it took the request, and checks each event later (an
identifier it knows is dropped silently, a bad event shows as a meter error report and as
reconciliation drift). So a row's outcome is `streamed`, never `accepted`/`duplicate`.
"""

from __future__ import annotations

import functools
import logging
from decimal import Decimal

import psycopg

from stripemeter.db.pool import ConnOrPool, borrow
from stripemeter.errors import GatewayError, StripeKeyRefused, StripeRefused, StripeUnavailable
from stripemeter.ingest.validation import STRIPE_MAX_DIGITS
from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.stripe.gateway import StripeGateway
from stripemeter.stripe.stream import MAX_EVENTS_PER_REQUEST, StreamEvent
from stripemeter.workers import state as worker_state
from stripemeter.writer.buckets import (
    PushFailure,
    PushResult,
    beyond_identifier_window,
    crash_hook,
    landed,
    note_error,
    release_customer_lock,
    stage,
    try_customer_lock,
)
from stripemeter.writer.identifiers import batch_idempotency_key
from stripemeter.writer.outbox import (
    OutboxRow,
    mark_attempt_failed,
    mark_batch_sent,
    mark_sent,
    pending_rows_of_all,
    quarantine,
    still_pending,
)
from stripemeter.writer.status import EVENTS_SENT

log = logging.getLogger("stripemeter.writer.stream")
_THROTTLED = ThrottledLog(log)
STREAMED = "streamed"


def send_pending_batches(
    conn_or_pool: ConnOrPool,
    gateway: StripeGateway,
    result: PushResult,
    tenant_id: str | None = None,
    customer_ref: str | None = None,
) -> PushFailure | None:
    """Send the pending outbox rows (all, one tenant's, or one customer's) in batches.

    Returns the failure that stopped it, if any (also noted on `result`): Stripe out, or
    the key refused, ends the sending; the rows not sent stay pending.
    """
    with borrow(conn_or_pool) as conn:
        rows = pending_rows_of_all(conn, tenant_id)
        conn.commit()
        if customer_ref is not None:
            rows = [r for r in rows if r.series.customer_ref == customer_ref]
        for start in range(0, len(rows), MAX_EVENTS_PER_REQUEST):
            try:
                _send_locked(conn, gateway, rows[start : start + MAX_EVENTS_PER_REQUEST], result)
            except GatewayError as exc:
                return note_error(result, exc)
    return None


def _send_locked(
    conn: psycopg.Connection, gateway: StripeGateway, rows: list[OutboxRow], result: PushResult
) -> None:
    """Send the rows whose customers this writer can lock; the others wait for their own."""
    customers = sorted({(r.series.tenant_id, r.series.customer_ref) for r in rows})
    held: set[tuple[str, str]] = set()
    try:
        for tenant, customer in customers:
            if try_customer_lock(conn, tenant, customer):
                held.add((tenant, customer))
            else:
                result.locked_elsewhere += 1
        mine = [r for r in rows if (r.series.tenant_id, r.series.customer_ref) in held]
        mine = still_pending(conn, mine) if mine else []
        conn.commit()
        ready = [row for row in mine if _sendable(conn, gateway, row, result)]
        if ready:
            _send_batch(conn, gateway, ready, result)
    finally:
        conn.rollback()
        for tenant, customer in held:
            release_customer_lock(conn, tenant, customer)


def _sendable(
    conn: psycopg.Connection, gateway: StripeGateway, row: OutboxRow, result: PushResult
) -> bool:
    """Settle a row without sending it when that is right; whether to send it."""
    if beyond_identifier_window(row) and landed(conn, gateway, row):
        mark_sent(conn, row, "found")
        conn.commit()
        result.found += 1
        return False
    if len(str(row.value)) > STRIPE_MAX_DIGITS:
        _quarantine(
            conn,
            row,
            result,
            f"meter_event_value_too_many_digits: Stripe takes at most {STRIPE_MAX_DIGITS}"
            f" digits and would drop this event after accepting the request",
        )
        return False
    return True


def _quarantine(conn: psycopg.Connection, row: OutboxRow, result: PushResult, reason: str) -> None:
    quarantine(conn, row, reason)
    conn.commit()
    result.quarantined += 1
    _THROTTLED.warning(
        f"quarantined:{row.series.tenant_id}",
        "writer: meter event %s (customer %s) quarantined: %s",
        row.identifier,
        row.series.customer_ref,
        reason,
    )


def _event(row: OutboxRow) -> StreamEvent:
    return StreamEvent(
        event_name=row.series.event_name,
        identifier=row.identifier,
        timestamp=row.event_ts,
        payload={row.customer_key: row.stripe_customer_id, row.value_key: str(row.value)},
    )


def _send_batch(
    conn: psycopg.Connection, gateway: StripeGateway, rows: list[OutboxRow], result: PushResult
) -> None:
    """One stream request for `rows`; on a refusal, each half on its own, down to one row."""
    for row in rows:
        stage("before_send", row)
    key = functools.partial(
        batch_idempotency_key, [(r.identifier, r.event_ts, r.value, r.attempts) for r in rows]
    )
    try:
        gateway.send_meter_event_batch([_event(r) for r in rows], idempotency_key=key)
    except (StripeUnavailable, StripeKeyRefused) as exc:
        if isinstance(exc, StripeUnavailable):
            for row in rows:
                stage("unanswered", row)
        for row in rows:
            mark_attempt_failed(conn, row, str(exc))
        conn.commit()
        raise
    except StripeRefused as exc:
        if len(rows) == 1:
            _quarantine(conn, rows[0], result, f"{exc.code or 'refused'}: {exc}")
            return
        half = len(rows) // 2
        _send_batch(conn, gateway, rows[:half], result)
        _send_batch(conn, gateway, rows[half:], result)
        return
    for row in rows:
        stage("answered", row)
        crash_hook()
    mark_batch_sent(conn, rows, STREAMED)
    for tenant in sorted({r.series.tenant_id for r in rows}):
        worker_state.record_push(conn, tenant)
    conn.commit()
    EVENTS_SENT.labels(outcome=STREAMED).inc(len(rows))
    result.events_sent += len(rows)
    result.units_pushed += sum((Decimal(r.value) for r in rows), Decimal(0))
