"""What the docker runner would start, as data: no engine needed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from steps._env import load_env
from stripemeter.errors import ConfigError
from stripemeter_dev.docker import DockerRunner
from stripemeter_dev.docker_specs import DockerSettings, service_specs, step_spec
from stripemeter_dev.runner import RunnerError


@pytest.fixture(autouse=True)
def _no_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory: a developer's `.env` must not change what is tested."""
    monkeypatch.chdir(tmp_path)


def settings_for(tmp_path: Path, **environ: str) -> DockerSettings:
    """DockerSettings from an explicit environment (only `environ`, no .env)."""
    return DockerSettings.from_environment({"DEMO_STATE_DIR": str(tmp_path), **environ})


def test_without_a_key_the_stack_runs_the_emulator_and_points_every_app_at_it(
    tmp_path: Path,
) -> None:
    specs = {spec.name: spec for spec in service_specs(settings_for(tmp_path))}
    assert list(specs) == ["postgres", "emulator", "migrate", "api", "workers"]
    for name in ("api", "workers"):
        assert specs[name].environment["STRIPE_API_BASE"] == "http://emulator:12111"
        assert specs[name].environment["STRIPE_SECRET_KEY"] == ""
    assert specs["api"].environment["BYPASS_AUTH"] == "1"
    assert "--no-workers" in specs["api"].command


def test_with_a_stripe_key_there_is_no_emulator_and_the_key_reaches_the_services(
    tmp_path: Path,
) -> None:
    settings = dataclasses.replace(settings_for(tmp_path), stripe_secret_key="sk_test_abc")
    specs = {spec.name: spec for spec in service_specs(settings)}
    assert "emulator" not in specs
    assert specs["workers"].environment["STRIPE_SECRET_KEY"] == "sk_test_abc"
    assert specs["workers"].environment["STRIPE_API_BASE"] == ""
    with pytest.raises(RunnerError, match="refused: STRIPE_SECRET_KEY is a live-mode key"):
        DockerRunner(dataclasses.replace(settings, stripe_secret_key="sk_live_x")).up()
    assert step_spec(settings, "setup").environment["STRIPE_SECRET_KEY"] == "sk_test_abc"


def test_docker_variables_choose_images_ports_and_project(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path,
        POSTGRES_IMAGE="ci/postgres:15",
        STRIPEMETER_IMAGE="sm:test",
        STRIPEMETER_API_PORT="0",
        STRIPEMETER_DOCKER_PROJECT="other",
        STRIPE_EMULATOR_ADVANCE_DELAY_MS="250",
    )
    specs = {spec.name: spec for spec in service_specs(settings)}
    assert specs["postgres"].image == "ci/postgres:15"
    assert specs["api"].image == "sm:test"
    assert specs["api"].ports == {3000: 0}
    assert specs["emulator"].command[-2:] == ("--advance-delay-ms", "250")
    assert settings.container_name("api") == "other-api"
    assert settings.network == "other-net"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("http", "Input should be a valid integer"),
        ("-1", "Input should be greater than or equal to 0"),
        ("70000", "Input should be less than or equal to 65535"),
    ],
)
def test_a_bad_port_variable_is_refused_by_name(tmp_path: Path, value: str, why: str) -> None:
    with pytest.raises(ConfigError) as refused:
        settings_for(tmp_path, STRIPEMETER_API_PORT=value)
    assert str(refused.value).startswith(f"invalid configuration: STRIPEMETER_API_PORT: {why}")
    assert str(refused.value).endswith(f"(got {value!r})")


def test_a_step_container_gets_only_the_steps_environment_and_the_state_mount(
    tmp_path: Path,
) -> None:
    spec = step_spec(settings_for(tmp_path), "validate", ["--assert", ".summary != null"])
    assert spec.command == ("python", "-m", "steps.validate", "--assert", ".summary != null")
    assert set(spec.environment) == {
        "API_HOST",
        "DATABASE_URL",
        "STRIPE_SECRET_KEY",
        "STRIPE_API_BASE",
        "RECONCILIATION_EPSILON",
        "DEMO_STATE_DIR",
        "DEMO_WAIT_TIMEOUT_S",
        "STEPS_TRACEBACK",
    }
    assert spec.image == "stripemeter-demo:local"
    assert spec.environment["API_HOST"] == "api:3000"
    assert spec.environment["DEMO_STATE_DIR"] == "/state"
    assert spec.environment["STEPS_TRACEBACK"] == "0"


@pytest.mark.parametrize(
    ("environ", "expected_wait_s"),
    [
        ({"STRIPE_SECRET_KEY": "sk_test_abc"}, 600.0),
        ({}, 120.0),
        ({"STRIPE_SECRET_KEY": "sk_test_abc", "DEMO_WAIT_TIMEOUT_S": "45"}, 45.0),
    ],
)
def test_a_step_container_waits_as_long_as_the_stripe_it_talks_to_needs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    environ: dict[str, str],
    expected_wait_s: float,
) -> None:
    """Real Stripe's waits default to 600 s in a container too, not the emulator's 120 s."""
    spec = step_spec(settings_for(tmp_path, **environ), "advance_clock")
    for name, value in spec.environment.items():  # what the step's process sees
        monkeypatch.setenv(name, value)
    assert load_env().wait_timeout_s == expected_wait_s


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
    (tmp_path / ".env").write_text(dotenv)
    specs = {spec.name: spec for spec in service_specs(settings_for(tmp_path, **environ))}
    for name in ("api", "workers"):
        env = specs[name].environment
        assert (env["STRIPE_WRITER_INTERVAL_MS"], env["RECONCILIATION_INTERVAL_MS"]) == expected


def test_an_unknown_step_is_refused_with_the_known_names(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="unknown step 'deploy': expected one of setup"):
        step_spec(settings_for(tmp_path), "deploy")


def test_docker_variables_come_from_dotenv_with_the_environment_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("POSTGRES_IMAGE=from-file:1\nSTRIPEMETER_IMAGE=file-app:1\n")
    monkeypatch.delenv("POSTGRES_IMAGE", raising=False)
    monkeypatch.setenv("STRIPEMETER_IMAGE", "env-app:2")
    settings = DockerSettings.from_environment()
    assert (settings.postgres_image, settings.app_image) == ("from-file:1", "env-app:2")
