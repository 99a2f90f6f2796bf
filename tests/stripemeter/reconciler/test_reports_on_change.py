"""A reconciliation writes a report only when the period's verdict or figures changed;
an unchanged re-check moves the latest report's `checked_at` (real emulator, real
PostgreSQL)."""

from __future__ import annotations

from typing import Any

import psycopg
import requests

from stripemeter.jsonio import iso
from stripemeter.reconciler.engine import reconcile
from tests.support.stripe_world import build_world, running_api, settings_for


def _rows(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT id, stripe_total, status, created_at, checked_at"
            " FROM reconciliation_reports ORDER BY created_at"
        ).fetchall()


def test_three_unchanged_runs_keep_one_report_and_advance_checked_at_a_change_adds_one(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1, with_item_id=True)
    customer = world.customers[0]
    settings = settings_for(emulator_url, db_url)
    tenant = str(world.tenant_id)

    def send(identifier: str, value: str) -> None:
        world.client.v1.billing.meter_events.create(
            {
                "event_name": world.event_name,
                "identifier": identifier,
                "timestamp": world.frozen_time() - 600,
                "payload": {"stripe_customer_id": customer, "value": value},
            }
        )

    send("never-sent-by-us-1", "7")
    checked = []
    with psycopg.connect(db_url) as conn:
        for _ in range(3):
            (report,) = reconcile(conn, world.gateway(), settings, tenant)
            assert (report["stripe_total"], report["status"]) == (7, "investigate")
            rows = _rows(db_url)
            assert len(rows) == 1
            assert report["id"] == rows[0][0]
            checked.append(rows[0][4])
        assert checked[0] < checked[1] < checked[2]
        assert rows[0][3] == checked[0]  # made once, at the first run

        send("never-sent-by-us-2", "5")
        (changed,) = reconcile(conn, world.gateway(), settings, tenant)
    rows = _rows(db_url)
    assert [(r[1], r[2]) for r in rows] == [(7, "investigate"), (12, "investigate")]
    assert changed["id"] == rows[1][0] and changed["id"] != rows[0][0]
    assert rows[0][4] == checked[2]  # the old report keeps its last check

    # Readers see the latest report with its heartbeat.
    month = f"{changed['period_start']:%Y-%m}"
    with running_api(settings, db_url) as api:
        listed = requests.get(
            f"{api}/v1/reconciliation/{month}", params={"tenantId": tenant}, timeout=10
        )
        summary = requests.get(
            f"{api}/v1/reconciliation/summary",
            params={"tenantId": tenant, "periodStart": month, "periodEnd": month},
            timeout=10,
        )
    assert listed.status_code == 200, listed.text
    (shown,) = listed.json()["reports"]
    assert (shown["id"], shown["stripe"], shown["drift_abs"]) == (str(rows[1][0]), "12", "12")
    assert shown["checkedAt"] == shown["createdAt"] == iso(rows[1][4])
    assert summary.status_code == 200, summary.text
    assert summary.json()["reconciledAt"] == iso(rows[1][4])
