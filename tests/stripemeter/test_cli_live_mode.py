"""`stripemeter api`/`workers` and live mode, as users run them (real subprocesses):
only the opt-in (`STRIPEMETER_LIVE=1` or `--live`) lets a live key in, the mode is
said at start-up, in `/health/ready` and on `/metrics`, and a refusal is one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests

from tests.stripemeter.test_cli import COMMAND, _env, _no_traceback, _wait_ready, home, run
from tests.support.live_standin import running_live_standin
from tests.support.servers import free_port

__all__ = ["home"]  # the fixture, shared with test_cli

LIVE_KEY = "sk_live_51CliLiveModeKey7890"


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    _no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("opt_in", ["env", "flag"])
def test_api_in_live_mode_starts_against_a_stand_in_and_says_so(
    home: Path, db_url: str, opt_in: str
) -> None:
    with running_live_standin() as (standin, _):
        env = {"DATABASE_URL": db_url, "STRIPE_SECRET_KEY": LIVE_KEY, "STRIPE_API_BASE": standin}
        args = ["api", "--port", str(port := free_port()), "--workers-processes", "1"]
        if opt_in == "env":
            env["STRIPEMETER_LIVE"] = "1"
        else:
            args.append("--live")
        process = subprocess.Popen(
            [*COMMAND, *args],
            cwd=home,
            env=_env(home, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, process)
            ready = requests.get(base + "/health/ready", timeout=10).json()
            metrics = requests.get(base + "/metrics", timeout=10).text
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=30)
    assert ready["stripe"] == {"mode": "live"}
    assert 'stripemeter_stripe_mode{mode="live"} 1.0' in metrics
    assert 'stripemeter_stripe_mode{mode="test"} 0.0' in metrics
    assert f"Stripe: live mode, key sk_live_…7890, {standin}" in output
    assert f"LIVE MODE against STRIPE_API_BASE={standin}" in output
    assert LIVE_KEY not in output and "Traceback" not in output


@pytest.mark.parametrize("command", [["workers"], ["api", "--port", "1"]])
def test_a_live_key_without_the_opt_in_exits_with_one_line_naming_it(
    home: Path, command: list[str]
) -> None:
    line = _one_line(run(home, *command, STRIPE_SECRET_KEY=LIVE_KEY))
    assert line == (
        "error: STRIPE_SECRET_KEY is a live-mode key but the service is in test mode; set "
        "STRIPEMETER_LIVE=1 (or pass --live) to meter real billing, or use an sk_test_ key"
    )
    assert not (home / "pgdata").exists()  # refused before the database started


@pytest.mark.parametrize("command", [["workers", "--live"], ["api", "--port", "1", "--live"]])
def test_live_mode_with_a_test_key_exits_with_one_line_naming_the_setting(
    home: Path, command: list[str]
) -> None:
    line = _one_line(run(home, *command, STRIPE_SECRET_KEY="sk_test_abc"))
    assert line.startswith("error: STRIPEMETER_LIVE is on but STRIPE_SECRET_KEY is a test-mode")
    assert not (home / "pgdata").exists()


def test_live_mode_without_a_key_exits_instead_of_using_the_emulator(home: Path) -> None:
    line = _one_line(run(home, "workers", STRIPEMETER_LIVE="1"))
    assert line.startswith("error: STRIPEMETER_LIVE is on but STRIPE_SECRET_KEY is not set")
