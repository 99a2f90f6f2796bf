"""Without an engine, or with one that cannot get the stack's images: `docker` tests skip
with the reason, or fail when CI requires Docker; `--runner auto` says why it cannot use
docker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stripemeter_dev.docker import docker_usable

REPO_ROOT = Path(__file__).resolve().parents[2]
NO_ENGINE = "unix:///nonexistent/stripemeter-test/docker.sock"
UNPULLABLE = "127.0.0.1:1/stripemeter-test/none:0"
DOCKER_TEST = (
    "tests/stripemeter_dev/test_docker_runner.py"
    "::test_a_step_without_a_running_stack_says_to_run_up"
)


def run_docker_test(**env: str) -> subprocess.CompletedProcess[str]:
    """Run one docker-marked test in a child pytest (by default pointed at an engine that
    is not there)."""
    child_env = {k: v for k, v in os.environ.items() if k != "STRIPEMETER_REQUIRE_DOCKER"}
    child_env.update({"DOCKER_HOST": NO_ENGINE, **env})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", DOCKER_TEST],
        cwd=REPO_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_without_an_engine_docker_tests_skip_naming_the_reason() -> None:
    result = run_docker_test()
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "no Docker engine answers" in result.stdout


def test_without_an_engine_docker_tests_fail_when_docker_is_required() -> None:
    result = run_docker_test(STRIPEMETER_REQUIRE_DOCKER="1")
    assert result.returncode == 1, result.stdout
    assert "STRIPEMETER_REQUIRE_DOCKER=1 but no Docker engine answers" in result.stdout


def test_auto_runner_reason_names_the_missing_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_ENGINE)
    usable, why = docker_usable()
    assert usable is False
    assert why.startswith("no Docker engine answers (")
    assert why.endswith("start one or use --runner local")


@pytest.mark.docker
def test_auto_runner_refuses_docker_when_the_postgres_image_cannot_be_had(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTGRES_IMAGE", "127.0.0.1:1/stripemeter-test/none:0")
    usable, why = docker_usable()
    assert usable is False
    assert "127.0.0.1:1/stripemeter-test/none:0 is not here and cannot be pulled" in why
    assert why.endswith("set POSTGRES_IMAGE")


def _engine_here() -> dict[str, str]:
    """The child's DOCKER_HOST: this process's engine (or the SDK's default)."""
    return {"DOCKER_HOST": os.environ.get("DOCKER_HOST", "")}


@pytest.mark.docker
@pytest.mark.parametrize(
    ("images", "variable"),
    [
        ({"POSTGRES_IMAGE": UNPULLABLE}, "POSTGRES_IMAGE"),
        (
            {"PYTHON_BASE_IMAGE": UNPULLABLE, "STRIPEMETER_IMAGE": "smtest-absent:0"},
            "PYTHON_BASE_IMAGE",
        ),
    ],
)
def test_an_engine_without_the_images_skips_docker_tests_naming_the_image(
    images: dict[str, str], variable: str
) -> None:
    result = run_docker_test(**_engine_here(), **images)
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert f"{UNPULLABLE} is not here and cannot be pulled" in result.stdout
    assert f"set {variable}" in result.stdout


@pytest.mark.docker
def test_an_engine_without_the_images_fails_docker_tests_when_docker_is_required() -> None:
    result = run_docker_test(
        **_engine_here(), POSTGRES_IMAGE=UNPULLABLE, STRIPEMETER_REQUIRE_DOCKER="1"
    )
    assert result.returncode == 1, result.stdout
    assert "STRIPEMETER_REQUIRE_DOCKER=1 but a Docker engine answers but" in result.stdout
    assert f"{UNPULLABLE} is not here and cannot be pulled" in result.stdout
