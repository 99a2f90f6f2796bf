"""How long the record of a worked webhook is kept: `prune(conn, older_than_days=...)`.

`stripe_webhook_events` is both the dedupe record (one row per Stripe event id) and the
work queue. Once an event is worked (`done`, `ignored`, `failed`) its row only guards
against a redelivery. Stripe resends an undelivered event for up to three days, and
lists events (which an operator may resend by hand) for 30 days
(docs.stripe.com/webhooks/process-undelivered-events), so rows older than
`WEBHOOK_RETENTION_DAYS` (30 by default, 0 keeps everything) are deleted by the workers'
maintenance step. A redelivery after that would be worked again, which is harmless:
flush and reconcile are idempotent.

Pending rows are never deleted. `meter_error_reports` rows are what Stripe said about
rejected meter events: they are kept as long as their webhook row, and go with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

WORKED = ("done", "ignored", "failed")


@dataclass(frozen=True)
class Pruned:
    """What one prune deleted."""

    webhook_events: int
    meter_error_reports: int


def prune(conn: psycopg.Connection, *, older_than_days: int) -> Pruned:
    """Delete worked webhook rows received more than `older_than_days` days ago (0: none).

    One transaction: the meter error reports of those events first (they reference
    them), then the events themselves.
    """
    if older_than_days <= 0:
        return Pruned(0, 0)
    with conn.transaction():
        old = conn.execute(
            """
            SELECT event_id FROM stripe_webhook_events
             WHERE status = ANY(%s)
               AND received_at < clock_timestamp() - make_interval(days => %s)
             FOR UPDATE SKIP LOCKED
            """,
            (list(WORKED), older_than_days),
        ).fetchall()
        ids = [row[0] for row in old]
        if not ids:
            return Pruned(0, 0)
        reports = conn.execute(
            "DELETE FROM meter_error_reports WHERE event_id = ANY(%s)", (ids,)
        ).rowcount
        events = conn.execute(
            "DELETE FROM stripe_webhook_events WHERE event_id = ANY(%s)", (ids,)
        ).rowcount
    return Pruned(webhook_events=events, meter_error_reports=reports)
