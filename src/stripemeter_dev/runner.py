"""How `invoke` runs the stack and the demo's steps: as local processes or as containers.

`tasks.py` stays thin: it picks a runner with `select_runner` and calls the methods of
the `Runner` protocol. `local` (processes on this machine, embedded PostgreSQL) lives
in `stripemeter_dev.local`; `docker` (one container per service and per step, through the
docker SDK) lives in `stripemeter_dev.docker`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from stripemeter.errors import StripemeterError

# The demo's steps, in the order `invoke demo` runs them; every step a runner may run.
DEMO_STEPS = ("setup", "send_usage", "advance_clock", "validate", "cleanup")
STEP_NAMES = (*DEMO_STEPS, "scenario", "report")


class RunnerError(StripemeterError):
    """A runner could not do what was asked; the message says why (no traceback shown)."""


class Runner(Protocol):
    """What every runner offers to tasks.py."""

    name: str

    def up(self) -> None:
        """Start PostgreSQL, the emulator (unless a Stripe key is set), API and workers."""

    def down(self) -> None:
        """Stop and remove everything `up` started."""

    def migrate(self) -> None:
        """Apply database migrations."""

    def emulator_reset(self) -> None:
        """Empty the emulator's state (running or stopped), saying what was done."""

    def run_step(self, step: str, args: Sequence[str] = ()) -> int:
        """Run `python -m steps.<step> *args`, streaming its output; return its exit code."""

    def still_running(self) -> list[str]:
        """One line per part of the stack that runs now (name and address), for people."""


def still_running_message(runner: Runner) -> str:
    """What `invoke demo` and `invoke scenarios` print at their end: what still runs, and
    how to stop it."""
    parts = runner.still_running()
    if not parts:
        return "the stack is not running"
    listed = "\n".join(f"  {part}" for part in parts)
    return f"still running (the stack stays up):\n{listed}\nstop it with: invoke down"


def select_runner(name: str) -> Runner:
    """The runner called `name` (`local`, `docker` or `auto`), explaining an `auto` pick."""
    if name == "local":
        from stripemeter_dev.local import LocalRunner

        return LocalRunner()
    if name == "docker":
        from stripemeter_dev.docker import DockerRunner

        return DockerRunner()
    if name == "auto":
        from stripemeter_dev.docker import docker_usable

        usable, why = docker_usable()
        print(f"runner: {'docker' if usable else 'local'} ({why})")
        return select_runner("docker" if usable else "local")
    raise RunnerError(f"unknown runner {name!r}: use local, docker or auto")
