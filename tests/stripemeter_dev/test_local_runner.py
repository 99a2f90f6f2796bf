"""The local runner's refusals and the environment it gives the steps (no services needed)."""

from __future__ import annotations

import io
import json
import socket
import sys
from pathlib import Path

import pytest

from stripemeter.errors import ConfigError
from stripemeter_dev.local import LocalRunner
from stripemeter_dev.processes import Service
from stripemeter_dev.runner import RunnerError, select_runner, still_running_message
from tests.steps.conftest import step_environment
from tests.support.servers import free_port


@pytest.fixture(autouse=True)
def _in_an_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer's `.env` here; a test that wants one writes it."""
    monkeypatch.chdir(tmp_path)


def runner_for(tmp_path: Path, **env: str) -> LocalRunner:
    """The runner `invoke` would build from this environment (the demo's variables scrubbed)."""
    environ = step_environment({"DEMO_STATE_DIR": str(tmp_path / "state"), **env})
    return LocalRunner(environ=environ, out=io.StringIO())


def test_select_runner_local_is_the_local_runner() -> None:
    assert isinstance(select_runner("local"), LocalRunner)


@pytest.mark.parametrize("key", ["sk_live_abc", "rk_live_abc"])
def test_up_refuses_a_live_key_before_starting_anything(tmp_path: Path, key: str) -> None:
    runner = runner_for(tmp_path, STRIPE_SECRET_KEY=key)
    with pytest.raises(RunnerError, match="refused: STRIPE_SECRET_KEY is a live-mode key"):
        runner.up()
    assert not (tmp_path / "state").exists()


def test_run_step_refuses_a_live_key(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, STRIPE_SECRET_KEY="sk_live_abc")
    with pytest.raises(RunnerError, match="live-mode key"):
        runner.run_step("validate")


def test_up_refuses_a_non_loopback_api_host(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, API_HOST="0.0.0.0:3000")
    with pytest.raises(RunnerError, match="not a loopback address"):
        runner.up()


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        (
            "STRIPE_EMULATOR_PORT",
            "twelve",
            "Input should be a valid integer, unable to parse string as an integer",
        ),
        ("STRIPE_EMULATOR_PORT", "0", "Input should be greater than or equal to 1"),
        ("STRIPE_EMULATOR_ADVANCE_DELAY_MS", "-5", "Input should be greater than or equal to 0"),
        ("STRIPEMETER_RUNNER", "cloud", "Input should be 'local', 'docker' or 'auto'"),
    ],
)
def test_a_bad_variable_is_refused_by_name_before_anything_starts(
    tmp_path: Path, name: str, value: str, why: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        runner_for(tmp_path, **{name: value})
    assert str(refused.value) == f"invalid configuration: {name}: {why} (got {value!r})"
    assert not (tmp_path / "state").exists()


def test_a_bad_variable_in_dotenv_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("STRIPE_EMULATOR_PORT=99999\n")
    with pytest.raises(ConfigError, match=r"^invalid configuration: STRIPE_EMULATOR_PORT: "):
        runner_for(tmp_path)


def test_dotenv_emulator_settings_reach_the_emulator_the_environment_winning(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text(
        "STRIPE_EMULATOR_PORT=4111\nSTRIPE_EMULATOR_ADVANCE_DELAY_MS=75\nAPI_HOST=127.0.0.1:4000\n"
    )
    argv = runner_for(tmp_path)._emulator_service().argv
    assert argv[-6:] == ["--host", "127.0.0.1", "--port", "4111", "--advance-delay-ms", "75"]
    winning = runner_for(tmp_path, STRIPE_EMULATOR_PORT="4222")._emulator_service()
    assert winning.argv[-4:-2] == ["--port", "4222"]
    assert winning.health_url == "http://127.0.0.1:4222/_emulator/health"


@pytest.mark.parametrize(
    ("environ", "dotenv", "expected"),
    [
        ({}, "", ("500", "5000")),
        (
            {},
            "STRIPE_WRITER_INTERVAL_MS=2000\nRECONCILIATION_INTERVAL_MS=30000\n",
            ("2000", "30000"),
        ),
        (
            {"STRIPE_WRITER_INTERVAL_MS": "3000"},
            "STRIPE_WRITER_INTERVAL_MS=2000\nRECONCILIATION_INTERVAL_MS=30000\n",
            ("3000", "30000"),
        ),
    ],
)
def test_worker_intervals_environment_over_dotenv_over_the_demo_defaults(
    tmp_path: Path, environ: dict[str, str], dotenv: str, expected: tuple[str, str]
) -> None:
    """The same precedence as the docker runner's (test_service_specs.py)."""
    (tmp_path / ".env").write_text(dotenv)
    env = runner_for(tmp_path, **environ).api_env("postgresql://x@127.0.0.1:1/n", None)
    assert (env["STRIPE_WRITER_INTERVAL_MS"], env["RECONCILIATION_INTERVAL_MS"]) == expected
    assert (env["BYPASS_AUTH"], env["DATABASE_URL"]) == ("1", "postgresql://x@127.0.0.1:1/n")


def test_unknown_step_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="unknown step 'deploy'"):
        runner_for(tmp_path).run_step("deploy")


def test_steps_get_the_emulator_that_up_recorded(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "runtime.json").write_text(
        json.dumps({"stripeApiBase": "http://127.0.0.1:4999"})
    )
    runner = runner_for(tmp_path, API_HOST="127.0.0.1:4555", RECONCILIATION_EPSILON="0.01")
    env = runner.step_env()
    assert env["RECONCILIATION_EPSILON"] == "0.01"
    assert env["STRIPE_API_BASE"] == "http://127.0.0.1:4999"
    assert env["DEMO_STATE_DIR"] == str((tmp_path / "state").resolve())
    assert env["API_HOST"] == "127.0.0.1:4555"
    assert "STRIPE_SECRET_KEY" not in env


def test_an_explicit_stripe_base_wins_over_the_recorded_one(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "runtime.json").write_text(
        json.dumps({"stripeApiBase": "http://127.0.0.1:4999"})
    )
    runner = runner_for(tmp_path, STRIPE_API_BASE="http://127.0.0.1:5111")
    assert runner.step_env()["STRIPE_API_BASE"] == "http://127.0.0.1:5111"


def test_with_a_test_key_steps_do_not_inherit_the_emulator(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "runtime.json").write_text(
        json.dumps({"stripeApiBase": "http://127.0.0.1:4999"})
    )
    env = runner_for(tmp_path, STRIPE_SECRET_KEY="sk_test_abc").step_env()
    assert env["STRIPE_SECRET_KEY"] == "sk_test_abc"
    assert "STRIPE_API_BASE" not in env


def test_run_step_returns_the_step_exit_code(tmp_path: Path) -> None:
    runner = runner_for(tmp_path)
    assert runner.run_step("cleanup") == 1


def test_down_without_anything_running_is_quiet(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    runner.down()
    assert not (tmp_path / "state" / "pids").exists()


def test_up_refuses_an_emulator_port_taken_by_another_program(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        runner = runner_for(
            tmp_path, STRIPE_EMULATOR_PORT=str(port), DATABASE_URL="postgresql://x@127.0.0.1:1/n"
        )
        with pytest.raises(RunnerError) as refused:
            runner.up()
    assert str(refused.value) == (
        f"port {port} is in use by another program, so the emulator cannot start there; "
        f"set STRIPE_EMULATOR_PORT to another port, e.g. STRIPE_EMULATOR_PORT={port + 1} "
        "(in the environment or .env)"
    )
    assert list((tmp_path / "state" / "pids").iterdir()) == []


def test_up_refuses_an_api_port_taken_by_another_program_naming_api_host(
    tmp_path: Path,
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        runner = runner_for(
            tmp_path,
            API_HOST=f"localhost:{port}",
            STRIPE_API_BASE=f"http://127.0.0.1:{free_port()}",
            DATABASE_URL="postgresql://x@127.0.0.1:1/n",
        )
        with pytest.raises(RunnerError) as refused:
            runner.up()
    assert str(refused.value) == (
        f"port {port} is in use by another program, so the api cannot start there; "
        f"set API_HOST to another loopback port, e.g. API_HOST=localhost:{port + 1} "
        "(in the environment or .env)"
    )


def test_a_service_dying_at_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    runner = runner_for(tmp_path)
    runner.logs_dir.mkdir(parents=True)
    runner.pids_dir.mkdir(parents=True)
    port = free_port()
    dying = Service(
        name="emulator",
        argv=[sys.executable, "-c", "import sys; print('cannot start: no luck'); sys.exit(2)"],
        health_url=f"http://127.0.0.1:{port}/_emulator/health",
        marker="stripe-emulator",
        timeout_s=30,
        env=runner.environ,
    )
    log = tmp_path / "state" / "logs" / "emulator.log"
    with pytest.raises(RunnerError) as failure:
        runner.processes.ensure(dying)
    assert str(failure.value) == (
        f"the emulator exited with code 2 during start-up: cannot start: no luck (see {log})"
    )
    assert not (tmp_path / "state" / "pids" / "emulator.pid").exists()


def test_still_running_names_the_emulator_it_started_and_how_to_stop_it(tmp_path: Path) -> None:
    port = free_port()
    runner = runner_for(
        tmp_path, STRIPE_EMULATOR_PORT=str(port), DATABASE_URL="postgresql://x@127.0.0.1:1/n"
    )
    assert still_running_message(runner) == "the stack is not running"
    runner.logs_dir.mkdir(parents=True)
    runner.pids_dir.mkdir(parents=True)
    runner.processes.ensure(runner._emulator_service())
    try:
        assert runner.still_running() == [f"Stripe emulator  http://127.0.0.1:{port}"]
        assert still_running_message(runner) == (
            "still running (the stack stays up):\n"
            f"  Stripe emulator  http://127.0.0.1:{port}\n"
            "stop it with: invoke down"
        )
    finally:
        runner.down()
    assert runner.still_running() == []
