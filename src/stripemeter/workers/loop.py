"""The background loops: the writer every STRIPE_WRITER_INTERVAL_MS, the reconciler every
RECONCILIATION_INTERVAL_MS, the ledger's partition upkeep every
LEDGER_MAINTENANCE_INTERVAL_MS (`stripemeter.db.partitions.maintain`), and the webhook
listener, which runs the work Stripe's webhooks queued (a flush on `invoice.created`, a
reconciliation on `invoice.finalized`) as soon as PostgreSQL notifies it
(`stripemeter.webhooks.work`), without waiting for those intervals; they stay the fallback.

- `run_forever(settings)`: `stripemeter workers` — blocks until SIGTERM/SIGINT, then
  finishes the current step and returns.
- `start_in_background(settings, db_url)`: `stripemeter api` without `--no-workers` —
  the same loops in daemon threads; `handle.stop()` ends them.
- `python -m stripemeter.workers.loop --drain [--tenant ID]`: push until nothing is
  pending, then exit (tests and the demo start writer processes this way).

A failing step is logged and recorded (`worker_state`); the loop goes on. Several
processes may run these loops at once: they coordinate through Postgres. A failure
that repeats every pass (Stripe down, 10,000 customerRefs Stripe does not know) is
logged once a minute with a count (`logthrottle`), not once per pass or customer.

Errors, one rule per place: a step's `StripemeterError` is one warning line (only a
bug keeps its traceback); `ShuttingDown` (the stop event cut a Stripe backoff short)
ends the loop and is recorded nowhere, for a shutdown is not an outage. Start-up
(`run_forever`, `main`) checks the database and its schema first, so an unreachable
or unmigrated database is one `error:` line and a non-zero exit, not a loop of
failing passes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

import psycopg

from stripemeter.cli import error_line
from stripemeter.config import Settings, load_settings
from stripemeter.db import connect, database_url, partitions
from stripemeter.db.migrate import require_current_schema
from stripemeter.db.pool import Pool, open_pool
from stripemeter.errors import InputError, ShuttingDown, StripemeterError
from stripemeter.ops.logthrottle import ThrottledLog
from stripemeter.reconciler.engine import reconcile
from stripemeter.stripe.client import gateway_from_settings, service_target
from stripemeter.tenants import check_tenant_id
from stripemeter.webhooks import retention
from stripemeter.webhooks.work import listen_forever, next_due_s, run_pending
from stripemeter.writer.passes import drain, push_pending

log = logging.getLogger("stripemeter.workers.loop")
throttled = ThrottledLog(log, interval_s=60)


@dataclass
class WorkerHandle:
    """Running worker threads; `stop()` ends them and closes their pool."""

    stop_event: threading.Event
    pool: Pool
    threads: list[threading.Thread] = field(default_factory=list)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ask the loops to stop, wait for the current steps, close the pool."""
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=timeout_s)
        self.pool.close()

    @property
    def running(self) -> bool:
        """Whether any loop thread is still alive."""
        return any(t.is_alive() for t in self.threads)


def _loop(name: str, interval_s: float, step: Callable[[], None], stop: threading.Event) -> None:
    log.info("%s loop started (every %.1fs)", name, interval_s)
    while not stop.is_set():
        try:
            step()
        except ShuttingDown:  # a StripemeterError, but the end of the loop, not a failure
            break
        # psycopg.OperationalError too: a connection lost in the middle of a step reaches
        # us from the driver (stripemeter.db converts only the failures to get one).
        except (StripemeterError, psycopg.OperationalError) as exc:
            throttled.warning(f"{name}:{type(exc).__name__}", "%s step failed: %s", name, exc)
        except Exception as exc:
            throttled.error(f"{name}:{type(exc).__name__}", "%s step failed", name, exc_info=True)
        stop.wait(interval_s)
    log.info("%s loop stopped", name)


def check_database(db_url: str) -> None:
    """Refuse to start on a database we cannot reach or whose schema is behind.

    Raises DatabaseUnavailable (with the driver's reason) or SchemaNotCurrent.
    """
    with connect(db_url) as conn:
        require_current_schema(conn)


def start_in_background(settings: Settings, db_url: str) -> WorkerHandle:
    """Start the writer and reconciler loops in daemon threads; return their handle.

    Raises StripeConfigError when the Stripe settings cannot be used (live key...).
    """
    stop = threading.Event()
    gateway = gateway_from_settings(settings, stop=stop)
    pool = open_pool(db_url, max_size=4)
    handle = WorkerHandle(stop_event=stop, pool=pool)
    log.info(
        "writer transport %s: %s",
        settings.WRITER_TRANSPORT,
        "one POST /v1/billing/meter_events per meter event"
        if settings.WRITER_TRANSPORT == "v1"
        else "the v2 meter event stream, up to 100 events per request",
    )

    def write() -> None:
        result = push_pending(pool, gateway, settings)
        if result.events_sent:
            log.info(
                "writer: %d sent, %d duplicate, %d post_close, %d deferred, %d error(s)",
                result.events_sent,
                result.duplicates,
                result.post_close,
                result.deferred,
                len(result.errors),
            )
        if result.errors:
            # One line a minute however many customers fail, each error kept in worker_state.
            throttled.warning(
                "writer:errors",
                "writer: %d error(s) in this pass, the first: %s",
                len(result.errors),
                result.errors[0][:500],
            )

    def reconcile_all() -> None:
        reconcile(pool, gateway, settings)

    claim: list[psycopg.Connection] = []  # the listener's claim connection, reopened if lost

    def webhook_work() -> float | None:
        if not claim or claim[0].closed:
            claim[:] = [psycopg.connect(db_url)]
        try:
            done = run_pending(claim[0], pool, gateway, settings)
            retry_in = next_due_s(claim[0])
        except psycopg.OperationalError:
            claim[0].close()
            raise
        if done:
            log.info("webhooks: %d item(s) run", len(done))
        return retry_in

    def listen() -> None:
        log.info("webhook listener started")
        try:
            listen_forever(
                db_url, stop, webhook_work, fallback_s=settings.STRIPE_WRITER_INTERVAL_MS / 1000
            )
        finally:
            for conn in claim:
                conn.close()
        log.info("webhook listener stopped")

    def maintain_ledger() -> None:
        with pool.connection() as conn:
            conn.autocommit = True
            try:
                partitions.maintain(
                    conn,
                    months_ahead=settings.LEDGER_PARTITIONS_AHEAD,
                    retention_months=settings.LEDGER_RETENTION_MONTHS,
                )
                pruned = retention.prune(conn, older_than_days=settings.WEBHOOK_RETENTION_DAYS)
            finally:
                conn.autocommit = False
        if pruned.webhook_events:
            log.info(
                "webhooks: %d worked event(s) older than %d days deleted (%d meter error reports)",
                pruned.webhook_events,
                settings.WEBHOOK_RETENTION_DAYS,
                pruned.meter_error_reports,
            )

    for name, interval_ms, step in (
        ("writer", settings.STRIPE_WRITER_INTERVAL_MS, write),
        ("reconciler", settings.RECONCILIATION_INTERVAL_MS, reconcile_all),
        ("ledger", settings.LEDGER_MAINTENANCE_INTERVAL_MS, maintain_ledger),
    ):
        thread = threading.Thread(
            target=_loop,
            args=(name, interval_ms / 1000.0, step, stop),
            name=f"stripemeter-{name}",
            daemon=True,
        )
        thread.start()
        handle.threads.append(thread)
    listener = threading.Thread(target=listen, name="stripemeter-webhooks", daemon=True)
    listener.start()
    handle.threads.append(listener)
    return handle


def run_forever(settings: Settings) -> None:
    """Run the loops until SIGTERM or SIGINT, then stop cleanly."""
    # Refuse a key the mode does not allow before the database is started on our behalf.
    target = service_target(settings)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping workers", signum)
        stop.set()

    # Handlers first: a signal during start-up must still stop the loops cleanly.
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        url = database_url(settings)
        check_database(url)
        log.info("%s", target.describe())  # once the start can no longer fail in one line
        if target.warning:
            log.warning("%s", target.warning)
        handle = start_in_background(settings, url)
        try:
            while not stop.wait(0.5):
                if not handle.running:
                    break
        finally:
            handle.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _tenant(text: str) -> str:
    try:
        return check_tenant_id(text, field="--tenant")
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m stripemeter.workers.loop`: run the loops, or drain the writer once."""
    parser = argparse.ArgumentParser(prog="python -m stripemeter.workers.loop")
    parser.add_argument("--drain", action="store_true", help="push until nothing is pending")
    parser.add_argument(
        "--tenant", type=_tenant, default=None, help="only this tenant id (--drain)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = load_settings()
        if not args.drain:
            run_forever(settings)
            return 0
        gateway = gateway_from_settings(settings)
        url = database_url(settings)
        check_database(url)
        pool = open_pool(url, max_size=2, wait=True)
        try:
            result = drain(pool, gateway, settings, args.tenant)
        finally:
            pool.close()
    except StripemeterError as exc:
        print(error_line(exc), file=sys.stderr)
        return 2
    print(
        f"drained: sent={result.events_sent} duplicates={result.duplicates} "
        f"post_close={result.post_close} deferred={result.deferred} errors={len(result.errors)}"
    )
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
