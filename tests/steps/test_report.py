"""`python -m steps.report`: the demo's and the scenarios' page from the service's
database, with what only the run knows (amounts, validate's and the matrix's verdicts)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from tests.steps.conftest import StepRunner
from tests.stripemeter.report.world import TENANT, write_world

JAN = "2026-01-01T00:00:00Z"


def _state(state_dir: Path) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / ".state.json").write_text(
        json.dumps(
            {"tenantId": TENANT, "testClockId": "clock_1", "stripeApiBase": "http://127.0.0.1:1"}
        )
    )


def _validated(state_dir: Path, tenant: str, verdict: str, status: str = "resolved") -> None:
    check = {"customerRef": "cus-a", "periodStart": JAN, "invoiceAmount": 2325,
             "currency": "usd", "status": status, "cause": None}  # fmt: skip
    record = {"at": "2026-07-01T00:00:00Z", "tenantId": tenant, "verdict": verdict,
              "invoices": [check], "problems": []}  # fmt: skip
    with (state_dir / "validate.log").open("a") as log:
        log.write("not json\n" + json.dumps(record) + "\n")


def _run(call_step: StepRunner, state_dir: Path, db_url: str, *args: str) -> dict:  # type: ignore[type-arg]
    result = call_step(
        "report", *args, env={"DEMO_STATE_DIR": str(state_dir), "DATABASE_URL": db_url}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"html: {state_dir / 'report.html'}"
    assert 'id="verdict"' in (state_dir / "report.html").read_text()
    return json.loads((state_dir / "report.json").read_text())  # type: ignore[no-any-return]


def test_the_demo_report_takes_validates_verdict_and_the_invoice_amount(
    call_step: StepRunner, tmp_path: Path, db_url: str
) -> None:
    write_world(db_url)
    state_dir = tmp_path / "state"
    _state(state_dir)
    _validated(state_dir, TENANT, "parity")
    body = _run(call_step, state_dir, db_url)
    assert (body["source"], body["verdict"]) == ("demo", "parity")
    first = body["sections"][0]
    assert (first["customerRef"], first["periodStart"], first["verdict"]) == (
        "cus-a",
        JAN,
        "parity",
    )
    assert first["invoice"] == {"id": "in_cus-a_01", "quantity": "425", "amount": 2325,
                                "currency": "usd"}  # fmt: skip
    # periods validate did not check keep the reconciler's verdict
    assert [(s["customerRef"], s["verdict"]) for s in body["sections"][1:]] == [
        ("cus-a", "parity"),
        ("cus-b", "drift"),
    ]


def test_validates_judgement_wins_over_the_reconcilers(
    call_step: StepRunner, tmp_path: Path, db_url: str
) -> None:
    write_world(db_url)
    state_dir = tmp_path / "state"
    _state(state_dir)
    _validated(state_dir, TENANT, "drift", status="drift")
    body = _run(call_step, state_dir, db_url)
    assert (body["verdict"], body["sections"][0]["verdict"]) == ("drift", "drift")


def test_a_validation_of_another_tenant_is_not_used(
    call_step: StepRunner, tmp_path: Path, db_url: str
) -> None:
    write_world(db_url)
    state_dir = tmp_path / "state"
    _state(state_dir)
    _validated(state_dir, "someone-else", "parity")
    body = _run(call_step, state_dir, db_url, "--source", "demo")
    assert body["verdict"] == "drift"  # the reconciler's: cus-b is under-billed
    assert "validate has not run for this tenant: verdicts are the reconciler's" in body["notes"]
    assert body["sections"][0]["invoice"]["amount"] is None


def test_the_scenarios_report_has_each_scenarios_sections_and_the_matrix_verdict(
    call_step: StepRunner, tmp_path: Path, db_url: str
) -> None:
    write_world(db_url)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    _validated(state_dir, TENANT, "parity")
    cell = {"customer": "cus-b", "periodStart": JAN, "stripe": {"amount": 450},
            "verdict": "drift", "problems": ["quantity 90 != oracle 100"]}  # fmt: skip
    scenarios = {"verdict": "drift", "scenarios": [
        {"name": "late", "tenantId": TENANT, "verdict": "drift", "cells": [cell], "error": None}
    ]}  # fmt: skip
    (state_dir / "scenarios.json").write_text(json.dumps(scenarios))
    later = (state_dir / "validate.log").stat().st_mtime + 5
    os.utime(state_dir / "scenarios.json", (later, later))  # auto: the newer file wins
    body = _run(call_step, state_dir, db_url)
    assert (body["source"], body["verdict"]) == ("scenarios", "drift")
    cus_b = body["sections"][2]
    assert cus_b["title"].startswith("late: cus-b / api_calls")
    assert (cus_b["invoice"]["amount"], cus_b["cause"]) == (450, "quantity 90 != oracle 100")
    assert body["notes"] == ["scenario late: DRIFT"]


def test_without_a_database_url_it_starts_the_embedded_server_and_stops_it_again(
    call_step: StepRunner, tmp_path: Path
) -> None:
    from stripemeter.config import load_settings
    from stripemeter.db import embedded

    home = Path(tempfile.mkdtemp(prefix="smrep", dir="/tmp"))  # a short socket path
    try:
        state_dir = tmp_path / "state"
        _state(state_dir)
        result = call_step(
            "report", env={"DEMO_STATE_DIR": str(state_dir), "STRIPEMETER_HOME": str(home)}
        )
        # a never-migrated server: one line naming the fix, and nothing left running
        assert result.returncode == 1
        assert "stripemeter migrate" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert embedded.running_url(load_settings(STRIPEMETER_HOME=home)) is None
    finally:
        embedded.stop(load_settings(STRIPEMETER_HOME=home))
        shutil.rmtree(home, ignore_errors=True)


def test_a_scenarios_result_that_is_not_an_object_is_one_line(
    call_step: StepRunner, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    (state_dir / "scenarios.json").write_text("[]")
    result = call_step("report", "--source", "scenarios", env={"DEMO_STATE_DIR": str(state_dir)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"report: error: {state_dir / 'scenarios.json'} is not a JSON object; "
        "run `invoke scenarios`"
    )
