"""Helpers for the demo step tests: run a step as the user would, as a subprocess."""

from __future__ import annotations

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
