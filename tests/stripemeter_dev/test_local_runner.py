"""The local runner's refusals and the environment it gives the steps (no services needed)."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from stripemeter.config import Settings, load_settings
from stripemeter_dev.local import LocalRunner
from stripemeter_dev.runner import RunnerError, select_runner
from tests.steps.conftest import step_environment
from tests.support.servers import free_port


def runner_for(tmp_path: Path, **env: str) -> LocalRunner:
    environ = step_environment({"DEMO_STATE_DIR": str(tmp_path / "state"), **env})
    fields = Settings.model_fields
    settings = load_settings(**{k: v for k, v in environ.items() if k in fields})
    return LocalRunner(settings, environ=environ, out=io.StringIO())


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


def test_bad_emulator_port_is_named(tmp_path: Path) -> None:
    runner = runner_for(tmp_path, STRIPE_EMULATOR_PORT="twelve")
    with pytest.raises(RunnerError, match="STRIPE_EMULATOR_PORT must be a port number"):
        runner.up()


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
        with pytest.raises(RunnerError, match=f"port {port} is in use by another program"):
            runner.up()
    assert list((tmp_path / "state" / "pids").iterdir()) == []


def test_a_service_dying_at_start_up_is_reported_with_its_log(tmp_path: Path) -> None:
    runner = runner_for(
        tmp_path,
        STRIPE_EMULATOR_PORT=str(free_port()),
        STRIPE_EMULATOR_ADVANCE_DELAY_MS="-5",
        DATABASE_URL="postgresql://x@127.0.0.1:1/n",
    )
    log = tmp_path / "state" / "logs" / "emulator.log"
    with pytest.raises(RunnerError) as failure:
        runner.up()
    message = str(failure.value)
    assert message.startswith("the emulator exited with code 2 during start-up:")
    assert "--advance-delay-ms must be >= 0" in message
    assert message.endswith(f"(see {log})")
    assert not (tmp_path / "state" / "pids" / "emulator.pid").exists()
