"""Webhook retention on real PostgreSQL: worked rows older than the retention go (with
their meter error reports), pending and recent rows stay, and a redelivery of a pruned
event is recorded as new."""

from __future__ import annotations

from typing import Any

import psycopg

from stripemeter.webhooks.receive import record
from stripemeter.webhooks.retention import Pruned, prune
from tests.stripemeter.api.test_stripe_webhooks import meter_error_event


def ignored_event(event_id: str) -> dict[str, Any]:
    return {"id": event_id, "type": "customer.created", "created": 1, "data": {"object": {}}}


def age(conn: psycopg.Connection, event_id: str, days: int) -> None:
    conn.execute(
        "UPDATE stripe_webhook_events"
        " SET received_at = clock_timestamp() - make_interval(days => %s) WHERE event_id = %s",
        (days, event_id),
    )
    conn.commit()


def rows(conn: psycopg.Connection) -> tuple[list[str], int]:
    events = [
        r[0]
        for r in conn.execute("SELECT event_id FROM stripe_webhook_events ORDER BY 1").fetchall()
    ]
    row = conn.execute("SELECT count(*) FROM meter_error_reports").fetchone()
    assert row is not None
    return events, int(row[0])


def test_worked_rows_past_the_retention_go_with_their_meter_errors(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        assert record(conn, meter_error_event("evt_errors_old")).status == "done"
        assert record(conn, meter_error_event("evt_errors_new")).status == "done"
        for event_id in ("evt_ignored_old", "evt_ignored_new", "evt_pending_old"):
            assert record(conn, ignored_event(event_id)).status == "ignored"
        conn.execute(
            "UPDATE stripe_webhook_events SET status = 'pending' WHERE event_id = 'evt_pending_old'"
        )
        for event_id in ("evt_errors_old", "evt_ignored_old", "evt_pending_old"):
            age(conn, event_id, 31)
        age(conn, "evt_ignored_new", 29)
        assert rows(conn) == (
            [
                "evt_errors_new",
                "evt_errors_old",
                "evt_ignored_new",
                "evt_ignored_old",
                "evt_pending_old",
            ],
            4,  # two error codes per report
        )

        assert prune(conn, older_than_days=30) == Pruned(webhook_events=2, meter_error_reports=2)

        assert rows(conn) == (["evt_errors_new", "evt_ignored_new", "evt_pending_old"], 2)
        assert prune(conn, older_than_days=30) == Pruned(0, 0)
        # Stripe resending a pruned event: recorded (and worked) again, which is idempotent.
        again = record(conn, ignored_event("evt_ignored_old"))
        assert (again.status, again.duplicate) == ("ignored", False)
        assert record(conn, ignored_event("evt_ignored_new")).duplicate  # kept: still deduped


def test_a_retention_of_zero_keeps_everything(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        record(conn, ignored_event("evt_ancient"))
        age(conn, "evt_ancient", 3000)
        assert prune(conn, older_than_days=0) == Pruned(0, 0)
        assert rows(conn) == (["evt_ancient"], 0)
