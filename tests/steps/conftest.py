"""Helpers for the demo step tests: run a step as the user would, as a subprocess."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# Variables a developer's shell may carry that would change what a step talks to.
_SCRUBBED = (
    "DATABASE_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_API_BASE",
    "API_HOST",
    "DEMO_STATE_DIR",
    "STRIPEMETER_HOME",
    "RECONCILIATION_EPSILON",
    "STEPS_TRACEBACK",
)

StepRunner = Callable[..., subprocess.CompletedProcess[str]]


def step_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    """os.environ without the demo's variables, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(overrides)
    return env


@pytest.fixture
def run_step(tmp_path: Path) -> StepRunner:
    """Run `python -m steps.<name> *args` in a temp dir (no .env) and capture its output."""

    def run(name: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 120):
        return subprocess.run(
            [sys.executable, "-m", f"steps.{name}", *args],
            cwd=tmp_path,
            env=step_environment(env or {}),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


@pytest.fixture
def call_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> StepRunner:
    """Run a step's `main` in this process (no interpreter start-up): same wrapper, same
    exit codes and output as `python -m steps.<name>`, but a fraction of the time."""
    from steps._env import main

    def call(name: str, *args: str, env: Mapping[str, str] | None = None, timeout: float = 0):
        for variable in _SCRUBBED:
            monkeypatch.delenv(variable, raising=False)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        monkeypatch.chdir(tmp_path)
        module = importlib.import_module(f"steps.{name}")
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main(name, module.run, list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        return subprocess.CompletedProcess(
            [name, *args], code if isinstance(code, int) else 1, out, err
        )

    return call
