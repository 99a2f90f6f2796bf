"""The workers' side of webhooks: wake on `NOTIFY stripemeter_work`, run the queued items.

`listen_forever(db_url, stop, run)` holds a dedicated autocommit connection that
`LISTEN`s on the channel `receive.record` notifies on commit, and calls `run()` (one
`run_pending` sweep) when a notification arrives, right after (re)connecting (items
queued while no worker listened), and every `fallback_s` anyway. A lost connection is
logged and reopened after a second; the writer and reconciler loops go on polling on
their intervals meanwhile, so webhooks only ever make work happen sooner.

`run_pending` claims one pending row at a time with `FOR UPDATE SKIP LOCKED` on its own
connection (several worker processes share the queue; a process that dies mid-item
leaves it pending for the next sweep) and runs it on the workers' pool:

    flush      `writer.passes.push_customer_now` for the (tenant, customerRef)
    reconcile  `reconciler.engine.reconcile` for the tenant

Both are idempotent, so at-least-once here is exactly-once at Stripe (the outbox) and one
report per period and run. A failed attempt keeps the row pending with its error and a
`not_before` of `RETRY_BASE_S * 2**(attempts-1)` (at most `RETRY_MAX_S`), and the listener
wakes for it then; after `MAX_ATTEMPTS` the row is `failed` (the polling loops still
cover its work, and `stripemeter_stripe_webhook_work_total` counts every outcome).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg
from prometheus_client import Counter

from stripemeter.config import Settings
from stripemeter.db.pool import Pool
from stripemeter.errors import ShuttingDown, StripemeterError
from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.ops.metrics import REGISTRY
from stripemeter.reconciler.engine import reconcile
from stripemeter.stripe.gateway import StripeGateway
from stripemeter.webhooks.receive import NOTIFY_CHANNEL
from stripemeter.writer.passes import push_customer_now

log = logging.getLogger("stripemeter.webhooks.work")
throttled = ThrottledLog(log, interval_s=60)  # a database down for an hour: 60 lines, not 3600

MAX_ATTEMPTS = 5
RETRY_BASE_S = 2.0
RETRY_MAX_S = 60.0

WEBHOOK_WORK = Counter(
    "stripemeter_stripe_webhook_work",
    "Webhook work items run by the workers, by action (flush, reconcile) and outcome "
    "(done, retry, failed).",
    ["action", "outcome"],
    registry=REGISTRY,
)


def retry_delay_s(attempts: int) -> float:
    """Seconds before the next try of an item that failed `attempts` times."""
    return float(min(RETRY_BASE_S * 2 ** min(attempts - 1, 20), RETRY_MAX_S))


@dataclass(frozen=True)
class Done:
    """One item a sweep ran."""

    event_id: str
    action: str
    outcome: str  # done, retry, failed

    @property
    def ok(self) -> bool:
        """Whether the item's work succeeded."""
        return self.outcome == "done"


def _run_one(
    action: str,
    tenant_id: str,
    customer_ref: str | None,
    pool: Pool,
    gateway: StripeGateway,
    settings: Settings,
) -> None:
    if action == "flush":
        assert customer_ref is not None
        result = push_customer_now(pool, gateway, settings, tenant_id, customer_ref)
        if result.errors:
            raise _ItemFailed(result.errors[0])
        log.info(
            "webhook flush %s/%s: %d sent, %d duplicate, %d deferred",
            tenant_id,
            customer_ref,
            result.events_sent,
            result.duplicates,
            result.deferred,
        )
    elif action == "reconcile":
        reports = reconcile(pool, gateway, settings, tenant_id)
        log.info("webhook reconcile %s: %d report(s)", tenant_id, len(reports))
    else:
        raise _ItemFailed(f"unknown action {action!r}")


class _ItemFailed(Exception):
    """An item's work reported an error without raising one."""


def run_pending(
    claim: psycopg.Connection, pool: Pool, gateway: StripeGateway, settings: Settings
) -> list[Done]:
    """Run every pending item that is due, oldest first, one claimed row at a time; what ran."""
    done: list[Done] = []
    while True:
        with claim.transaction():
            row = claim.execute(
                "SELECT event_id, action, tenant_id, customer_ref, attempts"
                " FROM stripe_webhook_events WHERE status = 'pending'"
                " AND (not_before IS NULL OR not_before <= clock_timestamp())"
                " ORDER BY received_at, event_id LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchone()
            if row is None:
                return done
            event_id, action, tenant_id, customer_ref, attempts = row
            error: str | None = None
            try:
                _run_one(action, tenant_id, customer_ref, pool, gateway, settings)
            except ShuttingDown:
                raise  # the transaction rolls back: the item stays pending
            except (StripemeterError, _ItemFailed, psycopg.OperationalError) as exc:
                error = str(exc)[:2000] or type(exc).__name__
                log.warning("webhook %s (%s) failed: %s", event_id, action, error)
            attempts += 1
            if error is None:
                outcome, status, delay = "done", "done", None
            elif attempts < MAX_ATTEMPTS:
                outcome, status, delay = "retry", "pending", retry_delay_s(attempts)
            else:
                outcome, status, delay = "failed", "failed", None
            claim.execute(
                "UPDATE stripe_webhook_events SET status = %s, attempts = %s, error = %s,"
                " processed_at = CASE WHEN %s = 'pending' THEN NULL ELSE clock_timestamp() END,"
                " not_before = clock_timestamp() + make_interval(secs => %s)"
                " WHERE event_id = %s",
                (status, attempts, error, status, delay or 0.0, event_id),
            )
        WEBHOOK_WORK.labels(action=action, outcome=outcome).inc()
        done.append(Done(event_id, action, outcome))


def next_due_s(conn: psycopg.Connection) -> float | None:
    """Seconds until the earliest pending retry is due (0 if one is), None if none waits."""
    row = conn.execute(
        "SELECT extract(epoch FROM min(not_before) - clock_timestamp())"
        " FROM stripe_webhook_events WHERE status = 'pending'"
    ).fetchone()
    conn.commit()
    if row is None or row[0] is None:
        return None
    return max(0.0, float(row[0]))


def listen_forever(
    db_url: str,
    stop: threading.Event,
    run: Callable[[], float | None],
    *,
    fallback_s: float = 60.0,
    poll_s: float = 0.5,
) -> None:
    """Call `run()` on every notification, every `fallback_s`, and when the seconds the
    last `run()` returned (the next retry due) have passed, until `stop` is set."""
    while not stop.is_set():
        try:
            with psycopg.connect(db_url, autocommit=True) as listen:
                listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
                due = float("-inf")
                while not stop.is_set():
                    woke = time.monotonic() >= due
                    if not woke:
                        woke = any(True for _ in listen.notifies(timeout=poll_s, stop_after=1))
                    if woke:
                        retry_in = _guarded(run)
                        wait = fallback_s if retry_in is None else min(fallback_s, retry_in)
                        due = time.monotonic() + wait
        except psycopg.OperationalError as exc:
            throttled.warning(
                "listener:db", "webhook listener: database connection lost (%s); reconnecting", exc
            )
            stop.wait(1.0)
        except ShuttingDown:
            return


def _guarded(run: Callable[[], float | None]) -> float | None:
    try:
        return run()
    except (ShuttingDown, psycopg.OperationalError):
        raise
    except StripemeterError as exc:
        log.warning("webhook work failed: %s", exc)
    except Exception:
        log.exception("webhook work failed")
    return None
