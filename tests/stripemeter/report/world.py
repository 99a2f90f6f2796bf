"""A tenant's stored history, written straight into a migrated database, for the report
tests: two customers' January periods (one settled by a correction, one under-billed),
a February period, an older report superseded by a newer one, a superseded correction.

January, customer `cus-a` (sum):
  01-02 01:00  75 units, received 10 min after the writer sent 01-03 01:00: late
  01-03 01:00  350 units, sent 5 min after they were received
  01-20 05:00  40 units parked post-close (never sent); an applied correction bills them
  ledger 465, Stripe meter 425, invoice line 425 + correction 40 = 465: parity
January, customer `cus-b`: ledger 100, invoice 90, no correction: drift 10.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

TENANT = "acme"
METRIC = "api_calls"
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
H_LATE = datetime(2026, 1, 2, 1, tzinfo=UTC)
H_MAIN = datetime(2026, 1, 3, 1, tzinfo=UTC)
H_CLOSED = datetime(2026, 1, 20, 5, tzinfo=UTC)
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)  # wall time the events arrived


def _event(cur: psycopg.Cursor, key: str, ref: str, qty: int, ts: datetime, got: datetime) -> None:
    cur.execute(
        "INSERT INTO events (tenant_id, idempotency_key, metric, customer_ref, quantity, ts,"
        " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (TENANT, key, METRIC, ref, qty, ts, got),
    )


def _bucket(cur: psycopg.Cursor, ref: str, hour: datetime, total: int, count: int) -> None:
    cur.execute(
        "INSERT INTO usage_buckets (tenant_id, metric, customer_ref, hour_start, total,"
        " event_count) VALUES (%s, %s, %s, %s, %s, %s)",
        (TENANT, METRIC, ref, hour, total, count),
    )


def _push(
    cur: psycopg.Cursor, ref: str, hour: datetime, value: int, sent: datetime | None, status: str
) -> None:
    cur.execute(
        "INSERT INTO push_state (tenant_id, metric, customer_ref, hour_start, event_name,"
        " stripe_customer_id, aggregation, source_value, covered, status)"
        " VALUES (%s, %s, %s, %s, 'api_calls', %s, 'sum', %s, %s, %s)",
        (TENANT, METRIC, ref, hour, f"stripe_{ref}", value, value if sent else 0, status),
    )
    if sent is not None:
        cur.execute(
            "INSERT INTO meter_pushes (tenant_id, metric, customer_ref, hour_start, event_name,"
            " stripe_customer_id, meter_id, customer_key, value_key, value, covers,"
            " identifier, event_ts, status, sent_at) VALUES (%s, %s, %s, %s, 'api_calls', %s,"
            " 'mtr_1', 'stripe_customer_id', 'value', %s, %s, %s, %s, 'sent', %s)",
            (
                TENANT,
                METRIC,
                ref,
                hour,
                f"stripe_{ref}",
                value,
                value,
                f"id-{ref}-{hour:%m%d%H}",
                int(hour.timestamp()),
                sent,
            ),
        )


def _report(
    cur: psycopg.Cursor,
    ref: str,
    period: tuple[datetime, datetime],
    figures: tuple[int, int, int | None],
    status: str,
    created: datetime,
) -> None:
    local, stripe, quantity = figures
    cur.execute(
        "INSERT INTO reconciliation_reports (tenant_id, metric, customer_ref,"
        " subscription_item_id, period_start, period_end, local_total, stripe_total,"
        " invoice_id, invoice_quantity, drift_abs, drift_pct, status, final, created_at)"
        " VALUES (%s, %s, %s, 'si_1', %s, %s, %s, %s, %s, %s, 0, 0, %s, %s, %s)",
        (
            TENANT,
            METRIC,
            ref,
            period[0],
            period[1],
            local,
            stripe,
            None if quantity is None else f"in_{ref}_{period[0]:%m}",
            quantity,
            status,
            quantity is not None,
            created,
        ),
    )


def _correction(cur: psycopg.Cursor, qty: int, amount: int, status: str, obj: str | None) -> None:
    cur.execute(
        "INSERT INTO corrections (tenant_id, metric, customer_ref, stripe_customer_id,"
        " subscription_id, subscription_item_id, price_id, period_start, period_end,"
        " invoice_id, kind, quantity, amount, currency, description, ledger_quantity,"
        " billed_quantity, status, stripe_object_id) VALUES (%s, %s, 'cus-a', 'stripe_cus-a',"
        " 'sub_1', 'si_1', 'price_1', %s, %s, 'in_cus-a_01', 'invoice_item', %s, %s, 'usd',"
        " 'usage after close', 465, 425, %s, %s)",
        (TENANT, METRIC, JAN, FEB, qty, amount, status, obj),
    )


def write_world(db_url: str) -> None:
    """Store the module docstring's history for tenant `acme`."""
    with psycopg.connect(db_url) as conn, conn.cursor() as cur:
        _event(cur, "e-main", "cus-a", 350, H_MAIN + timedelta(minutes=30), T0)
        late = T0 + timedelta(minutes=10)  # after H_MAIN was sent
        _event(cur, "e-late", "cus-a", 75, H_LATE + timedelta(minutes=5), late)
        _event(cur, "e-closed", "cus-a", 40, H_CLOSED, T0 + timedelta(days=30))
        _bucket(cur, "cus-a", H_MAIN, 350, 1)
        _bucket(cur, "cus-a", H_LATE, 75, 1)
        _bucket(cur, "cus-a", H_CLOSED, 40, 1)
        _push(cur, "cus-a", H_MAIN, 350, T0 + timedelta(minutes=5), "active")
        _push(cur, "cus-a", H_LATE, 75, T0 + timedelta(minutes=15), "active")
        _push(cur, "cus-a", H_CLOSED, 40, None, "post_close")
        _bucket(cur, "cus-b", H_MAIN, 100, 4)
        _push(cur, "cus-b", H_MAIN, 100, T0 + timedelta(minutes=5), "active")
        # an older report of cus-a's January: the newer one below is what counts
        _report(cur, "cus-a", (JAN, FEB), (465, 425, 425), "post_close", T0)
        _report(cur, "cus-a", (JAN, FEB), (465, 425, 425), "resolved", T0 + timedelta(days=31))
        _report(cur, "cus-b", (JAN, FEB), (100, 90, 90), "post_close", T0 + timedelta(days=31))
        _report(cur, "cus-a", (FEB, MAR), (0, 0, None), "ok", T0 + timedelta(days=31))
        _correction(cur, 30, 300, "superseded", None)
        _correction(cur, 40, 400, "applied", "ii_1")


EXPECTED_JANUARY_HOURS = [
    {"hour": "2026-01-02T01:00:00Z", "ledger": "75", "stripe": "75", "late": True,
     "postClose": False},
    {"hour": "2026-01-03T01:00:00Z", "ledger": "350", "stripe": "350", "late": False,
     "postClose": False},
    {"hour": "2026-01-20T05:00:00Z", "ledger": "40", "stripe": "0", "late": False,
     "postClose": True},
]  # fmt: skip
