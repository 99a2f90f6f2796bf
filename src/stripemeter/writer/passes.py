"""The writer: push hourly usage to Stripe Billing Meters as deltas, exactly once.

For each active mapping and customer, every hour bucket whose target (below) differs
from what the outbox (`push_state`) already covers gets one meter event:

- `sum` mappings (meter formula `sum`), with sub-unit carry: a bucket's target is its
  share of the period's whole units, floor(running period total through the hour) -
  floor(running total through the previous hour), and its value = target - units
  already pushed for it. Stripe's sum over a billing period then equals floor(period
  total): 0.5 in one hour and 0.5 in the next bill 1 unit. A late event in an earlier
  hour moves shares between hours; the outbox never takes back what Stripe has, so
  only the units the period still lacks are added (`buckets._carried_plans`). The
  period's final remainder (< 1 unit) is not pushed, and not carried into the next
  period (its invoice bills its own events only); reports show it as local total minus
  the invoice quantity, within RECONCILIATION_EPSILON.
- `count` mappings (meter formula `sum` too): the same deltas of the bucket's event
  count (why not Stripe's `count` formula: `stripemeter.aggregations`).
- `last` mappings (meter formula `last`): value = floor(bucket's last value). Stripe's
  `last` over a period is the value of its latest event, i.e. the latest bucket's,
  which is the local last value of the period.
- `max` mappings (meter formula `last`, Stripe has no `max`): value = floor(running
  maximum of the period up to and including the bucket). Running maxima never
  decrease inside a period, so the latest event again carries the period's maximum.
  Periods come from Stripe (subscription item and invoice lines).

Grace window: a period's renewal invoice stays a draft for about an hour after the
period ends and Stripe recounts its usage when finalizing it, so usage ingested in that
hour for the closed period is still pushed (at its own hour, inside the period) and is
billed on that invoice. The writer pushes such a customer at once: on `invoice.created`
(`stripemeter.webhooks`), and without webhooks as soon as a pass's Stripe reads show a
draft invoice for a period holding the customer's pending usage. Both run
`push_customer_now`: the customer's pending rows and every mapping of it, sent right
away (v2 too), before the pass turns to other customers.

Events sit at the bucket's start (deltas) or `hour_start + push number` seconds (max/last,
so that a re-push of a bucket is later than the one it replaces); the reconciler
counts a bucket in the period containing its `hour_start`, the same rule. For a
customer on a test clock nothing is sent after the clock's frozen time (the bucket
waits), and buckets older than Stripe's 35 days are marked `too_old`. Buckets in a
period whose invoice is finalized are marked `post_close` and not pushed.

Exactly once, by an outbox (`stripemeter.writer.outbox`): a push is committed as an
outbox row (identifier, value, timestamp) before it is sent and marked sent after
Stripe answered. Every pass first re-sends the pending rows with their own identifiers
(Stripe's "identifier already used" counts as sent) and computes new deltas against
pushed + outstanding, so neither a crash, a timeout, a stored-then-500 nor more usage
arriving meanwhile can send the same units twice. Several writers coordinate through a
session advisory lock per (tenant, customer), re-reading the state after taking it.
The lock's connection comes from the workers' own pool, never the API's.

Transports (`WRITER_TRANSPORT`): `v1` sends each row as it is written, one
`POST /v1/billing/meter_events` per event; `v2` writes every customer's rows first and
then sends all pending rows in cross-customer batches of up to 100 on the v2 meter event
stream (`stripemeter.writer.stream`). Same rows, same identifiers, same exactly-once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg

from stripemeter.config import Settings
from stripemeter.db.pool import ConnOrPool, borrow
from stripemeter.errors import GatewayError
from stripemeter.mappings.meters import Mapping, active_mappings, ensure_meter
from stripemeter.stripe.client import ClientOrGateway, gateway_for
from stripemeter.stripe.gateway import MeterInfo, StripeGateway
from stripemeter.workers import state as worker_state
from stripemeter.writer.buckets import (
    CRASH_HOOK_ENV,
    PushFailure,
    PushResult,
    dirty_customers,
    floor_units,
    note_error,
    push_customer,
    release_customer_lock,
    send_pending,
    try_customer_lock,
)
from stripemeter.writer.outbox import customers_with_pending
from stripemeter.writer.status import PUSH_FAILURES
from stripemeter.writer.stream import send_pending_batches

__all__ = [
    "CRASH_HOOK_ENV",
    "ConnOrPool",
    "PushResult",
    "borrow",
    "drain",
    "floor_units",
    "push_customer_now",
    "push_pending",
]

log = logging.getLogger("stripemeter.writer.passes")


def push_pending(
    conn_or_pool: ConnOrPool,
    client: ClientOrGateway,
    settings: Settings,
    tenant_id: str | None = None,
) -> PushResult:
    """Push every pending bucket once (one pass); return what happened.

    Commits on the connection it uses. Safe to run in several processes at once. When
    Stripe keeps failing the pass stops early, records the error for the tenant
    (readiness turns `degraded`) and leaves the buckets pending: nothing is lost.
    """
    gateway = gateway_for(client, settings)
    streamed = settings.WRITER_TRANSPORT == "v2"
    result = PushResult()
    failed_tenants: dict[str, PushFailure] = {}
    with borrow(conn_or_pool) as conn:
        outstanding = customers_with_pending(conn, tenant_id)
        conn.commit()
    # Pending rows first, whatever became of their mapping since they were written (v2:
    # they go with the new rows, in the batches at the end).
    for tenant, customer_ref in outstanding:
        if result.stripe_failing or streamed:
            break
        with borrow(conn_or_pool) as conn:
            resend = functools.partial(_resend, gateway, tenant, customer_ref)
            one = _locked_customer(conn, tenant, customer_ref, resend)
        result.merge(one)
        if one.failures:
            failed_tenants.setdefault(tenant, one.failures[0])
    with borrow(conn_or_pool) as conn:
        mappings = active_mappings(conn, tenant_id)
        conn.commit()
    for mapping in mappings:
        if result.stripe_failing:
            failed_tenants.setdefault(mapping.tenant_id, result.failures[-1])
            continue
        failure = _push_mapping(conn_or_pool, gateway, settings, mapping, result)
        if failure is not None:
            failed_tenants.setdefault(mapping.tenant_id, failure)
    tenants = {m.tenant_id for m in mappings} | {t for t, _ in outstanding}
    if streamed and not result.stripe_failing:
        failure = send_pending_batches(conn_or_pool, gateway, result, tenant_id)
        if failure is not None:
            for tenant in tenants:
                failed_tenants.setdefault(tenant, failure)
    with borrow(conn_or_pool) as conn:
        for tenant in tenants:
            if tenant in failed_tenants:
                failed = failed_tenants[tenant]
                worker_state.record_failure(
                    conn, "writer", tenant, failed.message, outage=failed.outage
                )
                PUSH_FAILURES.inc()
            else:
                worker_state.record_success(conn, "writer", tenant)
        conn.commit()
    return result


def push_customer_now(
    conn_or_pool: ConnOrPool,
    client: ClientOrGateway,
    settings: Settings,
    tenant_id: str,
    customer_ref: str,
    *,
    lock_wait_s: float = 10.0,
) -> PushResult:
    """One customer's pass now (its pending outbox rows, then every active mapping of the
    tenant): what a draft renewal invoice asks (`invoice.created`, or a pass's Stripe
    reads showing the draft), so the closing period's usage, grace-window usage
    included, reaches Stripe before the draft is finalized. Waits up to `lock_wait_s`
    while another writer holds the customer (that writer re-reads the state, but its
    pass may have begun earlier).
    Records nothing in `worker_state`: the regular passes own the tenant's health.
    """
    gateway = gateway_for(client, settings)
    streamed = settings.WRITER_TRANSPORT == "v2"
    deadline = time.monotonic() + lock_wait_s
    while True:
        result = PushResult()
        with borrow(conn_or_pool) as conn:
            if not streamed:
                resend = functools.partial(_resend, gateway, tenant_id, customer_ref)
                result.merge(_locked_customer(conn, tenant_id, customer_ref, resend))
            mappings = active_mappings(conn, tenant_id)
            conn.commit()
        for mapping in mappings:
            if result.locked_elsewhere or result.stripe_failing:
                break
            try:
                meter = ensure_meter(conn_or_pool, gateway, mapping)
            except GatewayError as exc:
                note_error(result, exc)
                break
            with borrow(conn_or_pool) as conn:
                result.merge(
                    _push_locked_customer(
                        conn, gateway, mapping, meter, customer_ref, send_now=not streamed
                    )
                )
        if streamed and not (result.locked_elsewhere or result.stripe_failing):
            send_pending_batches(conn_or_pool, gateway, result, tenant_id, customer_ref)
        if not result.locked_elsewhere or time.monotonic() >= deadline:
            return result
        time.sleep(0.05)


def drain(
    conn_or_pool: ConnOrPool,
    client: ClientOrGateway,
    settings: Settings,
    tenant_id: str | None = None,
    *,
    max_passes: int = 50,
) -> PushResult:
    """Run passes until one pushes nothing (or `max_passes`); the totals of all passes."""
    total = PushResult()
    for _ in range(max_passes):
        one = push_pending(conn_or_pool, client, settings, tenant_id)
        deferred, locked = one.deferred, one.locked_elsewhere
        total.merge(one)
        total.deferred, total.locked_elsewhere = deferred, locked
        moved = one.moved
        if one.errors and moved == 0:
            break  # Stripe (or a mapping) keeps failing: report instead of spinning
        if moved == 0 and locked == 0:
            break
        if moved == 0:
            time.sleep(0.05)  # another writer holds some customers; let it finish
    return total


def _push_mapping(
    conn_or_pool: ConnOrPool,
    gateway: StripeGateway,
    settings: Settings,
    mapping: Mapping,
    result: PushResult,
) -> PushFailure | None:
    """Push one mapping's dirty customers (v2: only write their rows); the first failure.

    A customer whose Stripe reads show a draft invoice closing a period of its pending
    usage is flushed at once (`push_customer_now`: every mapping, rows sent now).
    With a pool, customers are pushed in parallel (each on its own connection, the
    account's call cap still applies); with one connection, one after the other.
    """
    send_now = settings.WRITER_TRANSPORT != "v2"
    concurrency = settings.STRIPE_MAX_CONCURRENCY
    try:
        meter = ensure_meter(conn_or_pool, gateway, mapping)
    except GatewayError as exc:
        return note_error(result, exc)
    with borrow(conn_or_pool) as conn:
        customers = dirty_customers(conn, mapping, meter)
    stripe_down = threading.Event()

    def one(customer_ref: str) -> PushResult:
        if stripe_down.is_set():
            return PushResult()
        with borrow(conn_or_pool) as conn:
            outcome = _push_locked_customer(
                conn, gateway, mapping, meter, customer_ref, send_now=send_now
            )
        if outcome.closing and not outcome.failures:
            # Another writer holding the customer is pushing it: no waiting for it here.
            flush = push_customer_now(
                conn_or_pool, gateway, settings, mapping.tenant_id, customer_ref, lock_wait_s=0
            )
            flush.flushed += 1
            outcome.merge(flush)
        if outcome.stripe_failing:
            stripe_down.set()
        return outcome

    if isinstance(conn_or_pool, psycopg.Connection) or concurrency <= 1 or len(customers) <= 1:
        outcomes = [one(c) for c in customers]
    else:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="writer") as pool:
            outcomes = list(pool.map(one, customers))
    first: PushFailure | None = None
    for outcome in outcomes:
        result.merge(outcome)
        if outcome.failures and first is None:
            first = outcome.failures[0]
    return first


def _resend(
    gateway: StripeGateway,
    tenant_id: str,
    customer_ref: str,
    conn: psycopg.Connection,
    result: PushResult,
) -> None:
    send_pending(conn, gateway, tenant_id, customer_ref, result)


def _push_locked_customer(
    conn: psycopg.Connection,
    gateway: StripeGateway,
    mapping: Mapping,
    meter: MeterInfo,
    customer_ref: str,
    *,
    send_now: bool = True,
) -> PushResult:
    """Push one customer of one mapping under the customer's lock, if free."""
    return _locked_customer(
        conn,
        mapping.tenant_id,
        customer_ref,
        lambda c, r: push_customer(c, gateway, mapping, meter, customer_ref, r, send_now=send_now),
    )


def _locked_customer(
    conn: psycopg.Connection,
    tenant_id: str,
    customer_ref: str,
    work: Callable[[psycopg.Connection, PushResult], None],
) -> PushResult:
    """Run `work` under the (tenant, customer) lock (`try_customer_lock`), if it is free."""
    result = PushResult()
    if not try_customer_lock(conn, tenant_id, customer_ref):
        result.locked_elsewhere += 1
        return result
    try:
        work(conn, result)
    except GatewayError as exc:
        note_error(result, exc, customer_ref)
    finally:
        # Every outbox write committed on its own; whatever is open now is unfinished.
        conn.rollback()
        release_customer_lock(conn, tenant_id, customer_ref)
    return result
