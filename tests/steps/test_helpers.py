"""The steps' small shared pieces: waits, state files, the seed's batch."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from steps._billing import ceil_hour, fmt, iso
from steps._env import StepError
from steps._state import DemoState, append_validate_log, load_state, save_state
from steps._wait import wait_until
from steps.send_usage import FIRST_BATCH, LATE_BATCH, expected_total


def test_the_seed_batch_counts_each_key_once() -> None:
    assert expected_total(FIRST_BATCH) == Decimal(350)
    assert expected_total(FIRST_BATCH, LATE_BATCH) == Decimal(425)
    assert [e.key for e in FIRST_BATCH + LATE_BATCH] == [
        "demo-evt-1",
        "demo-evt-2",
        "demo-evt-1",
        "demo-evt-late",
    ]
    assert [e.offset_s for e in FIRST_BATCH + LATE_BATCH] == [-1500, 0, -1500, -86400]


def test_wait_until_returns_once_done_and_reports_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answers = iter([(False, "1 pending"), (False, "1 pending"), (True, "0 pending")])
    waited = wait_until("the thing", lambda: next(answers), timeout_s=5, first_interval_s=0.01)
    assert waited >= 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "  waiting for the thing: 1 pending (0 s)"
    assert out[-1].startswith("  done: the thing after ")


def test_wait_until_times_out_naming_what_it_saw() -> None:
    with pytest.raises(StepError) as failure:
        wait_until(
            "the writer", lambda: (False, "pending 3"), timeout_s=0.05, hint="is it running?"
        )
    assert str(failure.value) == (
        "timed out after 0 s waiting for the writer (last seen: pending 3); is it running?"
    )


def test_state_round_trips_and_ignores_unknown_keys(tmp_path: Path) -> None:
    state = DemoState(tenantId="t", testClockId="clock_1", stripeApiBase="http://x")
    state.setupComplete = True
    save_state(tmp_path, state)
    data = json.loads((tmp_path / ".state.json").read_text())
    data["fromANewerVersion"] = 1
    (tmp_path / ".state.json").write_text(json.dumps(data))
    assert load_state(tmp_path) == state
    assert [p.name for p in tmp_path.iterdir()] == [".state.json"]  # no temp files left


def test_state_without_its_ids_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".state.json").write_text(json.dumps({"tenantId": "t"}))
    with pytest.raises(StepError, match="lacks testClockId, stripeApiBase"):
        load_state(tmp_path)


def test_validate_log_gets_one_json_line_per_run(tmp_path: Path) -> None:
    append_validate_log(tmp_path, {"verdict": "parity"})
    append_validate_log(tmp_path, {"verdict": "drift"})
    lines = (tmp_path / "validate.log").read_text().splitlines()
    assert [json.loads(line)["verdict"] for line in lines] == ["parity", "drift"]


def test_formatting_helpers() -> None:
    assert fmt(Decimal("425.000000")) == "425"
    assert fmt(Decimal("0.0235")) == "0.0235"
    assert iso(0) == "1970-01-01T00:00:00Z"
    assert ceil_hour(3600) == 3600 and ceil_hour(3601) == 7200
