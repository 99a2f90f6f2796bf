"""The operator commands as users run them (real subprocesses, PostgreSQL, emulator):
`stripemeter reconcile --tenant T [--period YYYY-MM]` prints one line per report and
exits 0 on parity, 2 on drift, 1 on error; `stripemeter summary --tenant T [--json]`
prints the month's usage, pending pushes and the last verdict."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from stripemeter.ops.operator import current_month
from stripemeter.writer.passes import drain
from tests.stripemeter.test_cli import _no_traceback, home, run
from tests.support.emulator import TEST_KEY
from tests.support.servers import free_port
from tests.support.stripe_world import (
    HOUR,
    build_world,
    ingest,
    running_api,
    settings_for,
    usage_event,
)

__all__ = ["home"]  # the fixture, shared with test_cli


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _one_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    _no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[-1]


def test_reconcile_and_summary_report_parity_then_drift(
    home: Path, emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    (customer,) = world.customers
    tenant = str(world.tenant_id)
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": emulator_url, "STRIPE_SECRET_KEY": TEST_KEY}
    settings = settings_for(emulator_url, db_url)
    hour = world.frozen_time() - 2 * HOUR
    hour -= hour % HOUR
    with running_api(settings, db_url) as api:
        ingest(api, [usage_event(world, customer, hour + 60, 7, "a")])
        with psycopg.connect(db_url) as conn:
            assert drain(conn, world.gateway(), settings).errors == []
        period = f"{_day(world.period_start)}..{_day(world.period_end)}"

        parity = run(home, "reconcile", "--tenant", tenant, **env)
        assert parity.returncode == 0, parity.stderr
        assert parity.stdout.splitlines() == [
            f"api_calls {customer} {period}: local 7, stripe 7, drift 0 (0%) ok"
        ]
        assert parity.stderr.strip().endswith(f"parity: 1 report(s) for tenant {tenant}")

        ingest(api, [usage_event(world, customer, hour + 120, 3, "b")])  # not pushed yet
    drifted = run(home, "reconcile", "--tenant", tenant, **env)
    assert drifted.returncode == 2, drifted.stderr
    (line,) = drifted.stdout.splitlines()
    # drift_pct 3/7 = 0.428571, shown as a percentage.
    assert line == (
        f"api_calls {customer} {period}: local 10, stripe 7, drift 3 (42.8571%) investigate"
    )

    month = time.strftime("%Y-%m", time.gmtime(world.period_start))
    in_month = run(home, "reconcile", "--tenant", tenant, "--period", month, **env)
    assert in_month.returncode == 2 and len(in_month.stdout.splitlines()) == 1

    summary = run(home, "summary", "--tenant", tenant, "--json", **env)
    assert summary.returncode == 0, summary.stderr
    start, end = current_month(datetime.now(UTC))
    answer = json.loads(summary.stdout)
    last_report_at = answer["reconciliation"].pop("lastReportAt")
    assert answer == {
        "tenantId": tenant,
        "period": {
            "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "usage": [{"metric": "api_calls", "total": "10", "events": 2, "max": "7", "last": "3"}],
        "pending": {"buckets": 1, "units": "3"},
        "reconciliation": {"verdict": "drift", "reports": 1, "drifting": 1, "lastError": None},
    }
    assert last_report_at.endswith("Z")
    text = run(home, "summary", "--tenant", tenant, **env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        f"tenant {tenant}, {answer['period']['start']}..{answer['period']['end']}",
        "usage api_calls: total 10 (2 events)",
        "pending: 1 bucket(s), 3 unit(s)",
        f"reconciliation: drift (1 report(s), 1 drifting, latest {last_report_at})",
    ]


def test_reconcile_with_nothing_to_compare_in_the_period_exits_1(
    home: Path, emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": emulator_url, "STRIPE_SECRET_KEY": TEST_KEY}
    line = _one_error(
        run(home, "reconcile", "--tenant", str(world.tenant_id), "--period", "2001-01", **env)
    )
    assert line == (
        f"error: no reconciliation report for tenant {world.tenant_id} with a period starting "
        "in 2001-01: it has no active mapping with a bound, subscribed customer there "
        "(see GET /v1/mappings)"
    )


def test_reconcile_with_stripe_unreachable_exits_1_with_one_line(
    home: Path, emulator_url: str, db_url: str
) -> None:
    world = build_world(emulator_url, db_url, customers=1)
    down = f"http://127.0.0.1:{free_port()}"
    env = {"DATABASE_URL": db_url, "STRIPE_API_BASE": down, "STRIPE_SECRET_KEY": TEST_KEY}
    line = _one_error(run(home, "reconcile", "--tenant", str(world.tenant_id), **env))
    assert line.startswith(f"error: cannot read Stripe for tenant {world.tenant_id}: ")
    assert "Stripe kept failing after 3 attempts" in line


def test_operator_commands_refuse_bad_arguments(home: Path, db_url: str) -> None:
    tenant = str(uuid.uuid4())
    bad_month = run(home, "reconcile", "--tenant", tenant, "--period", "2026-13")
    assert bad_month.returncode == 1  # not 2: that is drift
    assert "--period must be a month as YYYY-MM (got '2026-13')" in bad_month.stderr
    extra = run(home, "reconcile", "--tenant", tenant, "--verbose")
    assert extra.returncode == 1 and "unrecognized arguments: --verbose" in extra.stderr
    unknown = run(home, "summary", "--tenant", tenant, "--format", "csv")
    assert unknown.returncode == 2 and "unrecognized arguments: --format csv" in unknown.stderr
    nobody = run(home, "summary", "--tenant", tenant, DATABASE_URL=db_url)
    assert nobody.returncode == 0, nobody.stderr
    assert nobody.stdout.splitlines()[1:] == [
        "usage: none this month",
        "pending: 0 bucket(s), 0 unit(s)",
        "reconciliation: no report this month",
    ]
