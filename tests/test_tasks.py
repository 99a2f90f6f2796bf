"""tasks.py's order of work with a recording runner (no stack): which steps `invoke demo`
and `invoke scenarios` run, that what still runs is printed before the report, and that
the report's path is the last line, on parity and on drift alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from invoke.context import Context
from invoke.exceptions import Exit

import tasks


class RecordingRunner:
    """Answers each step with the code given for it (0 otherwise) and records the calls."""

    name = "recording"

    def __init__(self, codes: dict[str, int]) -> None:
        self.codes = codes
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def up(self) -> None:
        self.calls.append(("up", ()))

    def down(self) -> None:
        self.calls.append(("down", ()))

    def migrate(self) -> None:
        self.calls.append(("migrate", ()))

    def emulator_reset(self) -> None:
        self.calls.append(("emulator_reset", ()))

    def run_step(self, step: str, args: Sequence[str] = ()) -> int:
        self.calls.append((step, tuple(args)))
        return self.codes.get(step, 0)

    def still_running(self) -> list[str]:
        return ["API and workers  http://127.0.0.1:3000"]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEMO_STATE_DIR", str(tmp_path))
    return tmp_path


def installed(monkeypatch: pytest.MonkeyPatch, codes: dict[str, int]) -> RecordingRunner:
    """A recording runner that every task of tasks.py will use."""
    runner = RecordingRunner(codes)
    monkeypatch.setattr(tasks, "_runner", lambda _name: runner)
    return runner


def test_a_demo_at_parity_cleans_up_then_ends_with_the_report_path(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = installed(monkeypatch, {})
    tasks.demo.body(Context())
    assert [step for step, _ in runner.calls] == [
        "up",
        "migrate",
        "setup",
        "send_usage",
        "advance_clock",
        "validate",
        "cleanup",
        "report",
    ]
    assert runner.calls[-1] == ("report", ("--source", "demo"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"report: {state_dir / 'report.html'}"
    assert lines.index("stop it with: invoke down") < lines.index("== report ==")


def test_a_demo_that_drifts_writes_the_report_then_exits_2(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = installed(monkeypatch, {"validate": 2})
    with pytest.raises(Exit) as stopped:
        tasks.demo.body(Context())
    assert stopped.value.code == 2
    assert "step validate exited 2" in str(stopped.value.message)
    # No cleanup: a drifting demo keeps its test clock and mapping for a look.
    assert [step for step, _ in runner.calls][-2:] == ["validate", "report"]
    assert capsys.readouterr().out.splitlines()[-1] == f"report: {state_dir / 'report.html'}"


def test_a_demo_that_fails_writes_no_report(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = installed(monkeypatch, {"advance_clock": 1})
    with pytest.raises(Exit) as stopped:
        tasks.demo.body(Context())
    assert stopped.value.code == 1
    assert [step for step, _ in runner.calls][-1] == "advance_clock"
    assert "report:" not in capsys.readouterr().out


@pytest.mark.parametrize(("code", "reported"), [(0, True), (2, True), (1, False)])
def test_scenarios_write_the_report_on_parity_and_drift_not_on_error(
    monkeypatch: pytest.MonkeyPatch,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    code: int,
    reported: bool,
) -> None:
    runner = installed(monkeypatch, {"scenario": code})
    if code:
        with pytest.raises(Exit) as stopped:
            tasks.scenarios.body(Context(), only=["seed,multi-customer"])
        assert stopped.value.code == code
    else:
        tasks.scenarios.body(Context(), only=["seed,multi-customer"])
    assert runner.calls[2] == ("scenario", ("--only", "seed", "--only", "multi-customer"))
    lines = capsys.readouterr().out.splitlines() or [""]
    assert (lines[-1] == f"report: {state_dir / 'report.html'}") is reported
    assert (("report", ("--source", "scenarios")) in runner.calls) is reported
