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
report per period and run. A failure marks the row `failed` with the error; the polling
loops still cover its work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import psycopg

from stripemeter.config import Settings
from stripemeter.db.pool import Pool
from stripemeter.errors import ShuttingDown, StripemeterError
from stripemeter.reconciler.engine import reconcile
from stripemeter.stripe.gateway import StripeGateway
from stripemeter.webhooks.receive import NOTIFY_CHANNEL
from stripemeter.writer.passes import push_customer_now

log = logging.getLogger("stripemeter.webhooks.work")


@dataclass(frozen=True)
class Done:
    """One item a sweep ran."""

    event_id: str
    action: str
    ok: bool


def _run_one(
    action: str,
    tenant_id: UUID,
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
    """Run every pending item, oldest first, one claimed row at a time; what ran."""
    done: list[Done] = []
    while True:
        with claim.transaction():
            row = claim.execute(
                "SELECT event_id, action, tenant_id, customer_ref FROM stripe_webhook_events"
                " WHERE status = 'pending' ORDER BY received_at, event_id"
                " LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchone()
            if row is None:
                return done
            event_id, action, tenant_id, customer_ref = row
            error: str | None = None
            try:
                _run_one(action, tenant_id, customer_ref, pool, gateway, settings)
            except ShuttingDown:
                raise  # the transaction rolls back: the item stays pending
            except (StripemeterError, _ItemFailed, psycopg.OperationalError) as exc:
                error = str(exc)[:2000] or type(exc).__name__
                log.warning("webhook %s (%s) failed: %s", event_id, action, error)
            claim.execute(
                "UPDATE stripe_webhook_events SET status = %s, attempts = attempts + 1,"
                " processed_at = clock_timestamp(), error = %s WHERE event_id = %s",
                ("failed" if error else "done", error, event_id),
            )
        done.append(Done(event_id, action, error is None))


def listen_forever(
    db_url: str,
    stop: threading.Event,
    run: Callable[[], object],
    *,
    fallback_s: float = 60.0,
    poll_s: float = 0.5,
) -> None:
    """Call `run()` on every notification (and every `fallback_s`) until `stop` is set."""
    while not stop.is_set():
        try:
            with psycopg.connect(db_url, autocommit=True) as listen:
                listen.execute(f"LISTEN {NOTIFY_CHANNEL}")
                last = float("-inf")
                while not stop.is_set():
                    woke = time.monotonic() - last >= fallback_s
                    if not woke:
                        woke = any(True for _ in listen.notifies(timeout=poll_s, stop_after=1))
                    if woke:
                        last = time.monotonic()
                        _guarded(run)
        except psycopg.OperationalError as exc:
            log.warning("webhook listener: database connection lost (%s); reconnecting", exc)
            stop.wait(1.0)
        except ShuttingDown:
            return


def _guarded(run: Callable[[], object]) -> None:
    try:
        run()
    except (ShuttingDown, psycopg.OperationalError):
        raise
    except StripemeterError as exc:
        log.warning("webhook work failed: %s", exc)
    except Exception:
        log.exception("webhook work failed")
