"""The scrape-time gauges of `/metrics`, byte for byte, for one fixed database state.

The state mixes aggregation kinds, buckets the outbox covers partly, whole and not at
all, unsent outbox rows, failing and stale writer streaks, and reports whose drift is a
repeating fraction, superseded or compared with a final invoice. The expected text
(`exposition/*.prom`) was taken from the gauges before they moved to
`stripemeter.ops.gauges` (issue 10): moving them, and sharing the "pending" and "latest
report" rules, changes nothing a scraper sees.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import requests

from tests.stripemeter.conftest import start_api

EXPECTED = Path(__file__).parent / "exposition"
TENANT_A = "00000000-0000-4000-8000-00000000000a"
TENANT_B = "00000000-0000-4000-8000-00000000000b"
GAUGE_PREFIXES = (
    "stripemeter_writer_pending_",
    "stripemeter_writer_stripe_failing",
    "stripemeter_writer_failing_tenants",
    "stripemeter_worker_",
    "stripemeter_reconciliation_",
)
HOUR_1 = "2026-11-20T10:00:00Z"
HOUR_2 = "2026-11-20T11:00:00Z"


def _bucket(
    conn: psycopg.Connection,
    tenant: uuid.UUID,
    metric: str,
    customer: str,
    hour: str,
    values: tuple[str, str, str, int],
) -> None:
    total, max_value, last_value, events = values
    conn.execute(
        "INSERT INTO usage_buckets (tenant_id, metric, customer_ref, hour_start, total,"
        " max_value, last_value, last_ts, event_count) VALUES (%s, %s, %s, %s, %s, %s, %s,"
        " %s::timestamptz + interval '30 minutes', %s)",
        (tenant, metric, customer, hour, total, max_value, last_value, hour, events),
    )


def _series(
    conn: psycopg.Connection,
    tenant: uuid.UUID,
    metric: str,
    customer: str,
    hour: str,
    event_name: str,
    aggregation: str,
    source_value: int,
    covered: int,
) -> None:
    conn.execute(
        "INSERT INTO push_state (tenant_id, metric, customer_ref, hour_start, event_name,"
        " stripe_customer_id, aggregation, source_value, covered, push_count)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1)",
        (tenant, metric, customer, hour, event_name, customer, aggregation, source_value, covered),
    )


def _unsent(
    conn: psycopg.Connection,
    tenant: uuid.UUID,
    metric: str,
    customer: str,
    hour: str,
    event_name: str,
    value: int,
    identifier: str,
) -> None:
    conn.execute(
        "INSERT INTO meter_pushes (tenant_id, metric, customer_ref, hour_start, event_name,"
        " stripe_customer_id, meter_id, customer_key, value_key, value, covers, identifier,"
        " event_ts) VALUES (%s, %s, %s, %s, %s, %s, 'mtr_1', 'stripe_customer_id', 'value',"
        " %s, %s, %s, 0)",
        (tenant, metric, customer, hour, event_name, customer, value, value, identifier),
    )


def _report(
    conn: psycopg.Connection,
    tenant: uuid.UUID,
    mapping_id: uuid.UUID,
    metric: str,
    customer: str,
    figures: tuple[str, str, str | None, str],
    status: str,
    age_s: int,
) -> None:
    local, stripe, invoice_quantity, drift_abs = figures
    conn.execute(
        "INSERT INTO reconciliation_reports (tenant_id, mapping_id, metric, customer_ref,"
        " subscription_item_id, period_start, period_end, local_total, stripe_total,"
        " invoice_quantity, drift_abs, drift_pct, status, final, created_at)"
        " VALUES (%s, %s, %s, %s, 'si_1', '2026-11-01', '2026-12-01', %s, %s, %s, %s, 0,"
        " %s, %s, now() - make_interval(secs => %s))",
        (
            tenant,
            mapping_id,
            metric,
            customer,
            local,
            stripe,
            invoice_quantity,
            drift_abs,
            status,
            invoice_quantity is not None,
            age_s,
        ),
    )


def seed(db_url: str) -> None:
    mapping: dict[str, uuid.UUID] = {}
    with psycopg.connect(db_url) as conn:
        for tenant, metric, kind, event_name in (
            (TENANT_A, "calls", "sum", "ev_calls"),
            (TENANT_A, "seats", "max", "ev_seats"),
            (TENANT_B, "gauge", "last", "ev_gauge"),
        ):
            row = conn.execute(
                "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id,"
                " meter_event_name) VALUES (%s, %s, %s, 'price_1', %s) RETURNING id",
                (tenant, metric, kind, event_name),
            ).fetchone()
            assert row is not None
            mapping[metric] = row[0]
        # calls: one bucket covered in part, one not at all, one covered whole.
        _bucket(conn, TENANT_A, "calls", "c1", HOUR_1, ("7.5", "4", "1", 3))
        _series(conn, TENANT_A, "calls", "c1", HOUR_1, "ev_calls", "sum", 5, 5)
        _bucket(conn, TENANT_A, "calls", "c2", HOUR_1, ("2.25", "2", "2", 1))
        _bucket(conn, TENANT_A, "calls", "c1", HOUR_2, ("3", "3", "3", 1))
        _series(conn, TENANT_A, "calls", "c1", HOUR_2, "ev_calls", "sum", 3, 3)
        _unsent(conn, TENANT_A, "calls", "c1", HOUR_2, "ev_calls", 3, "smp_1_a")
        # seats: the maximum went down below what the series covers.
        _bucket(conn, TENANT_A, "seats", "c1", HOUR_1, ("9", "6", "2", 2))
        _series(conn, TENANT_A, "seats", "c1", HOUR_1, "ev_seats", "max", 8, 8)
        # gauge: a last value above what is covered, and one with no series.
        _bucket(conn, TENANT_B, "gauge", "d1", HOUR_1, ("10", "5", "4", 3))
        _series(conn, TENANT_B, "gauge", "d1", HOUR_1, "ev_gauge", "last", 1, 1)
        _bucket(conn, TENANT_B, "gauge", "d2", HOUR_2, ("1", "1", "0.5", 1))
        conn.execute(
            "INSERT INTO worker_state (component, tenant_id, consecutive_failures, last_error,"
            " last_error_at) VALUES ('writer', %s, 3, 'down', now()),"
            " ('reconciler', %s, 2, 'down', now()), ('writer', %s, 5, 'old', now() - interval"
            " '1 hour'), ('reconciler', %s, 0, NULL, NULL)",
            (TENANT_A, TENANT_A, TENANT_B, TENANT_B),
        )
        _report(
            conn,
            TENANT_A,
            mapping["calls"],
            "calls",
            "c1",
            ("10", "7", None, "3"),
            "investigate",
            60,
        )
        _report(
            conn,
            TENANT_A,
            mapping["calls"],
            "calls",
            "c1",
            ("10", "9", None, "1"),
            "investigate",
            600,
        )
        _report(
            conn,
            TENANT_A,
            mapping["calls"],
            "calls",
            "c2",
            ("5", "0", None, "5"),
            "investigate",
            60,
        )
        _report(
            conn, TENANT_A, mapping["seats"], "seats", "c1", ("1", "20", "3", "2"), "post_close", 60
        )
        _report(
            conn,
            TENANT_B,
            mapping["gauge"],
            "gauge",
            "d1",
            ("0.1", "0.3", None, "0.2"),
            "investigate",
            60,
        )
        _report(conn, TENANT_B, mapping["gauge"], "gauge", "d2", ("4", "4", None, "0"), "ok", 60)


def gauge_lines(text: str) -> str:
    """The gauge families' lines (HELP, TYPE and samples) of a /metrics answer."""
    kept = []
    for line in text.splitlines():
        name = line.split(" ", 3)[2] if line.startswith("# ") else line
        if name.startswith(GAUGE_PREFIXES):
            kept.append(line)
    return "\n".join(kept) + "\n"


def test_gauges_read_the_same_text_for_the_same_state(db_url: str) -> None:
    seed(db_url)
    with start_api(db_url) as public, start_api(db_url, bypass=True) as detailed:
        totals = requests.get(public.url("/metrics"), timeout=30).text
        detail = requests.get(detailed.url("/metrics"), timeout=30).text
    assert gauge_lines(totals) == (EXPECTED / "gauges_totals.prom").read_text("utf-8")
    assert gauge_lines(detail) == (EXPECTED / "gauges_detail.prom").read_text("utf-8")
