"""invoke tasks: thin wrappers that parse options and call project code.

    invoke demo            up -> migrate -> setup -> send-usage -> advance-clock -> validate
                           -> cleanup (unless --keep); exit 0 on invoice parity. The stack
                           stays up either way: the demo ends by printing what still runs
                           (`invoke down` stops it), then `report: PATH`, also on drift
    invoke demo --scenario NAME
                           up -> migrate -> the scenario NAME (default seed: the demo above)
    invoke scenarios       up -> migrate -> every scenario in scenarios/ (or --only NAME ...),
                           the matrix of every invoice vs the oracle (exit 0 parity, 2 drift)
    invoke validate        re-check parity after manual changes (exit 0 parity, 2 drift, 1 error)
    invoke report          demo-state/report.html (+ report.json) of the last demo or scenarios
    invoke emulator-reset  empty the emulator's state (it survives `invoke down`/`up`)
    invoke test            the whole test suite (what CI runs)

Every stack/step task takes --runner local|docker|auto (default: STRIPEMETER_RUNNER from
the environment or .env, else local). Every expected failure (`StripemeterError`) ends
as one line, `error: ...`, and exit 1.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

if TYPE_CHECKING:
    from stripemeter_dev.runner import Runner

T = TypeVar("T")
DRIFT = 2  # the steps' exit code for drift (0 parity, 1 error)


def _runner(name: str | None) -> Runner:
    from stripemeter_dev.runner import select_runner
    from stripemeter_dev.settings import StackSettings

    return _guarded(lambda: select_runner(name or StackSettings.load().STRIPEMETER_RUNNER))


def _guarded(action: Callable[..., T], *args: Any) -> T:
    """Run project code, turning its expected failures into a one-line exit."""
    from stripemeter.errors import StripemeterError

    try:
        return action(*args)
    except StripemeterError as exc:
        raise Exit(f"error: {exc}", code=1) from None


def _step(runner_name: str | None, step: str, args: list[str]) -> None:
    runner = _runner(runner_name)
    code = _guarded(runner.run_step, step, args)
    if code:
        raise Exit(code=code)


@task(help={"runner": "local | docker | auto"})
def up(c: Context, runner: str | None = None) -> None:
    """Start PostgreSQL, the Stripe emulator (unless a key is set), the API and workers."""
    _guarded(_runner(runner).up)


@task(help={"runner": "local | docker | auto"})
def down(c: Context, runner: str | None = None) -> None:
    """Stop everything `invoke up` started."""
    _guarded(_runner(runner).down)


@task(name="emulator-reset", help={"runner": "local | docker | auto"})
def emulator_reset(c: Context, runner: str | None = None) -> None:
    """Empty the Stripe emulator's stored state (kept across `invoke down`/`up`)."""
    _guarded(_runner(runner).emulator_reset)


@task(help={"runner": "local | docker | auto"})
def migrate(c: Context, runner: str | None = None) -> None:
    """Apply database migrations."""
    _guarded(_runner(runner).migrate)


@task(help={"runner": "local | docker | auto", "fresh": "create new Stripe objects"})
def setup(c: Context, runner: str | None = None, fresh: bool = False) -> None:
    """Create the Stripe side on a Test Clock and upsert the price mapping."""
    _step(runner, "setup", ["--fresh"] if fresh else [])


@task(name="send-usage", help={"runner": "local | docker | auto"})
def send_usage(c: Context, runner: str | None = None) -> None:
    """Send the seed's usage: normal, duplicate and late events."""
    _step(runner, "send_usage", [])


@task(name="advance-clock", help={"runner": "local | docker | auto"})
def advance_clock(c: Context, runner: str | None = None) -> None:
    """Wait for the writer to drain, then advance the Test Clock past the period end."""
    _step(runner, "advance_clock", [])


@task(
    iterable=["assert_"],
    help={
        "runner": "local | docker | auto",
        "assert_": "extra jq acceptance expression over {summary, invoice, state, validation}",
        "json_": "print one JSON document (and nothing else) on stdout, for scripts",
    },
)
def validate(
    c: Context, runner: str | None = None, assert_: list[str] | None = None, json_: bool = False
) -> None:
    """Check every invoice of the demo and the open period: exit 0 parity, 2 drift, 1 error."""
    args: list[str] = ["--json"] if json_ else []
    for expression in assert_ or []:
        args += ["--assert", expression]
    _step(runner, "validate", args)


@task(help={"runner": "local | docker | auto"})
def cleanup(c: Context, runner: str | None = None) -> None:
    """Delete the Test Clock (cascades) and the demo's price mapping."""
    _step(runner, "cleanup", [])


@task(
    help={
        "runner": "local | docker | auto",
        "keep": "skip cleanup: keep the test clock, its invoices and the price mapping "
        "(the stack stays up either way; `invoke down` stops it)",
        "fresh": "create new Stripe objects even if state exists",
        "scenario": "a scenario of scenarios/ instead of the seed's demo (default seed)",
    }
)
def demo(
    c: Context,
    runner: str | None = None,
    keep: bool = False,
    fresh: bool = True,
    scenario: str = "seed",
) -> None:
    """The whole parity proof: up, migrate, setup, send usage, advance, validate, cleanup."""
    selected = _runner(runner)
    _guarded(selected.up)
    _guarded(selected.migrate)
    if scenario != "seed":
        _scenario_step(selected, ["--only", scenario, *(["--keep"] if keep else [])])
        return
    steps: list[tuple[str, list[str]]] = [
        ("setup", ["--fresh"] if fresh else []),
        ("send_usage", []),
        ("advance_clock", []),
        ("validate", []),
    ]
    for step, args in steps:
        print(f"\n== {step.replace('_', '-')} ==", flush=True)
        code = _guarded(selected.run_step, step, args)
        if code == DRIFT and step == "validate":
            _finish(selected, "demo")  # the page is most wanted on drift
        if code:
            raise Exit(f"demo stopped: step {step} exited {code}", code=code)
    if not keep:
        print("\n== cleanup ==", flush=True)
        code = _guarded(selected.run_step, "cleanup", [])
        if code:
            raise Exit(f"demo stopped: step cleanup exited {code}", code=code)
    _finish(selected, "demo")


@task(
    iterable=["only"],
    help={
        "runner": "local | docker | auto",
        "only": "run these scenarios: --only seed,multi-customer or --only seed --only "
        "multi-customer (default: all of scenarios/)",
        "json": "print the result as JSON instead of the matrix",
        "keep": "keep each scenario's test clock and mapping",
    },
)
def scenarios(
    c: Context,
    runner: str | None = None,
    only: list[str] | None = None,
    json: bool = False,
    keep: bool = False,
) -> None:
    """Run the scenarios and check every invoice against the oracle: exit 0 parity, 2 drift."""
    selected = _runner(runner)
    _guarded(selected.up)
    _guarded(selected.migrate)
    names = [name for value in only or [] for name in value.split(",") if name.strip()]
    args = [arg for name in names for arg in ("--only", name.strip())]
    _scenario_step(selected, args + (["--json"] if json else []) + (["--keep"] if keep else []))


def _scenario_step(selected: Runner, args: list[str]) -> None:
    code = _guarded(selected.run_step, "scenario", args)
    # Written on drift too (that is when it is read); not with --json, where stdout carries
    # the document alone, nor after an error, which may have written no result.
    if code in (0, DRIFT) and "--json" not in args:
        _finish(selected, "scenarios")
    if code:
        raise Exit(code=code)


def _finish(selected: Runner, source: str) -> None:
    """What still runs (and how to stop it), then the report, whose path is the last line."""
    from stripemeter_dev.runner import still_running_message

    print("\n" + _guarded(still_running_message, selected), flush=True)
    _report(selected, source)


@task(help={"runner": "local | docker | auto", "source": "auto | demo | scenarios"})
def report(c: Context, runner: str | None = None, source: str = "auto") -> None:
    """Write report.html + report.json of the last demo or scenarios run (auto: newer)."""
    _report(_runner(runner), source)


def _report(selected: Runner, source: str) -> None:
    from stripemeter_dev.settings import StackSettings

    print("\n== report ==", flush=True)
    code = _guarded(selected.run_step, "report", ["--source", source])
    if code:
        raise Exit(f"report: step report exited {code}", code=code)
    state_dir = _guarded(lambda: StackSettings.load().DEMO_STATE_DIR)
    print(f"report: {state_dir / 'report.html'}")


@task(help={"runner": "docker only"})
def images(c: Context, runner: str = "docker") -> None:
    """Build the service image and the steps' image from $PYTHON_BASE_IMAGE (docker runner)."""
    from stripemeter_dev.docker import build_app_image

    _guarded(build_app_image)


@task(help={"k": "only tests matching this expression", "x": "stop at the first failure"})
def test(c: Context, k: str = "", x: bool = False) -> None:
    """Run the whole test suite with pytest (exit 5, no tests collected, is a failure)."""
    args = [sys.executable, "-m", "pytest"]
    if k:
        args += ["-k", k]
    if x:
        args.append("-x")
    result = c.run(" ".join(_quote(a) for a in args), warn=True, pty=False)
    if result is None or result.exited != 0:
        code = result.exited if result is not None else 1
        raise Exit(f"tests failed (pytest exit {code})", code=code or 1)


@task
def lint(c: Context) -> None:
    """ruff and mypy (strict on src/)."""
    c.run(f"{sys.executable} -m ruff check .")
    c.run(f"{sys.executable} -m ruff format --check .", warn=True)
    c.run(f"{sys.executable} -m mypy")


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
