"""`GET /v1/reconciliation/summary` with no report in the window says why: reconciliation
never ran for the tenant (run it), a run is under way (poll it), or it ran and found no
period there (running it again would not help: check the window and the mappings)."""

from __future__ import annotations

import uuid

import psycopg
import requests

from tests.support.stripe_world import build_world, running_api, settings_for


def test_no_reports_says_run_it_before_a_run_and_check_the_window_after_one(
    emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    tenant = str(world.tenant_id)
    empty = {"tenantId": tenant, "periodStart": "1999-01", "periodEnd": "1999-01"}
    with running_api(settings_for(emulator_url, db_url), db_url) as api:
        before = requests.get(f"{api}/v1/reconciliation/summary", params=empty, timeout=10)
        assert before.status_code == 404
        assert before.json()["error"]["code"] == "no_reports"
        assert before.json()["error"]["message"] == (
            f"no reconciliation reports for tenant {tenant} with periods in 1999-01..1999-01: "
            "reconciliation has not run for this tenant yet; run POST /v1/reconciliation/run "
            "first"
        )

        run_id = uuid.uuid4()
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO reconciliation_runs (id, tenant_id, status)"
                " VALUES (%s, %s, 'running')",
                (run_id, tenant),
            )
        during = requests.get(f"{api}/v1/reconciliation/summary", params=empty, timeout=10)
        assert during.status_code == 404
        assert during.json()["error"]["message"] == (
            f"no reconciliation reports for tenant {tenant} with periods in 1999-01..1999-01: "
            f"reconciliation run {run_id} is still under way; poll "
            f"GET /v1/reconciliation/runs/{run_id} and ask again when it is done"
        )
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("DELETE FROM reconciliation_runs WHERE id = %s", (run_id,))

        ran = requests.post(
            f"{api}/v1/reconciliation/run",
            params={"wait": "true"},
            json={"tenantId": tenant},
            timeout=120,
        )
        assert ran.status_code == 200, ran.text

        after = requests.get(f"{api}/v1/reconciliation/summary", params=empty, timeout=10)
        assert after.status_code == 404
        message = after.json()["error"]["message"]
        assert message.startswith(
            f"no reconciliation reports for tenant {tenant} with periods in 1999-01..1999-01: "
            "the last reconciliation ("
        )
        assert message.endswith(
            ") found no billing period of an active mapping there; check the window and the "
            "tenant's mappings (GET /v1/mappings)"
        )
        assert "run POST /v1/reconciliation/run" not in message
