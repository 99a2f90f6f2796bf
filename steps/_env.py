"""What every step shares: its settings, its Stripe client and its one error handler.

Exceptions a step may end with:

    StripemeterError     every failure we raise on purpose, caught once; among them
      StepError          a prerequisite is missing or a check failed (message + exit code)
      ConfigError        a variable has an unusable value (names it; live keys included)
      DatabaseUnavailable  PostgreSQL could not be reached
    psycopg.Error        PostgreSQL refused or dropped a query (only once psycopg is loaded:
                         steps that never touch the database never import it)
    stripe.StripeError   Stripe (or the emulator) refused a call or could not be reached

`main` turns each of them into one line on stderr and a non-zero exit: a user of the
demo never sees a traceback (set `STEPS_TRACEBACK=1` to see one while debugging).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import stripe

from steps._settings import StepSettings, traceback_wanted
from stripemeter.errors import ConfigError, DatabaseUnavailable, StripemeterError
from stripemeter.stripe.client import REAL_STRIPE_BASE, make_client, resolve_stripe_target

METRIC = "api_calls"

# The Stripe the step's client targets, recorded for `main`'s error messages: its base
# URL, and which variables chose it ("key": STRIPE_SECRET_KEY set, "base": STRIPE_API_BASE).
_stripe_in_use: dict[str, str] = {}

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_DRIFT = 2


class StepError(StripemeterError):
    """A step cannot go on; `str(self)` is the one-line reason, `code` the exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StepEnv:
    """A step's view of its environment, read once at start."""

    settings: StepSettings
    state_dir: Path
    api_base: str

    @property
    def wait_timeout_s(self) -> float:
        """Upper bound of every single wait (see `StepSettings.wait_timeout_s`)."""
        return self.settings.wait_timeout_s

    def stripe_target(self, recorded_base: str | None = None) -> tuple[str, str]:
        """(key, base URL) of the Stripe this step talks to; refuses live keys first.

        `STRIPE_API_BASE` wins; with no key and no base, the base recorded in the demo
        state (the emulator `setup` used) is preferred over the default emulator address.
        """
        settings = self.settings
        base = settings.STRIPE_API_BASE
        if not settings.STRIPE_SECRET_KEY and not base and recorded_base:
            base = None if recorded_base == REAL_STRIPE_BASE else recorded_base
        key, resolved = resolve_stripe_target(settings.STRIPE_SECRET_KEY, base)
        return key, resolved or REAL_STRIPE_BASE

    def stripe_client(self, recorded_base: str | None = None) -> tuple[stripe.StripeClient, str]:
        """A StripeClient from the project's Stripe seam, and the base URL it targets."""
        key, base = self.stripe_target(recorded_base)
        api_base = None if base == REAL_STRIPE_BASE else base
        # For `main`'s message if Stripe cannot be reached.
        _stripe_in_use["base"] = base
        _stripe_in_use["key"] = "1" if self.settings.STRIPE_SECRET_KEY else ""
        _stripe_in_use["explicit_base"] = self.settings.STRIPE_API_BASE or ""
        return make_client(key, api_base), base


def load_env() -> StepEnv:
    """Read the settings a step needs; a bad variable raises `ConfigError` naming it."""
    settings = StepSettings.load()
    return StepEnv(
        settings=settings,
        state_dir=Path(settings.DEMO_STATE_DIR).resolve(),
        api_base=settings.api_base_url.rstrip("/"),
    )


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """An argument parser whose usage errors exit 1 with one line, like everything else."""

    class _OneLineParser(argparse.ArgumentParser):
        def error(self, message: str) -> None:  # type: ignore[override]
            raise StepError(f"{self.prog}: {message}")

    return _OneLineParser(prog=prog, description=description)


def _describe_stripe_error(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.AuthenticationError):
        return f"Stripe refused the API key (401): {exc.user_message or exc}"
    if isinstance(exc, stripe.APIConnectionError):
        return describe_unreachable(
            _stripe_in_use.get("base", ""),
            connection_cause(exc),
            keyed=bool(_stripe_in_use.get("key")),
            explicit_base=bool(_stripe_in_use.get("explicit_base")),
        )
    status = f" ({exc.http_status})" if exc.http_status else ""
    code = f" [{exc.code}]" if exc.code else ""
    return f"Stripe error{status}{code}: {exc.user_message or exc}"


def describe_unreachable(where: str, cause: str, *, keyed: bool, explicit_base: bool) -> str:
    """One line for a Stripe that did not answer: where, why (in full), and the fix.

    With a key set the user chose a real Stripe, so the fix is the network (or the
    variables that chose it), never the emulator's `invoke up`.
    """
    if keyed:
        variables = (
            "STRIPE_SECRET_KEY and STRIPE_API_BASE" if explicit_base else "STRIPE_SECRET_KEY"
        )
        fix = f"check the network, or unset {variables} to use the local emulator"
        return f"Stripe unreachable at {where}: {cause}; {fix}"
    return f"Stripe emulator unreachable at {where}: {cause}; is it running? `invoke up` starts it"


def connection_cause(exc: stripe.APIConnectionError) -> str:
    """The innermost reason a connection failed, whole ("[Errno 111] Connection refused",
    "Failed to resolve 'api.stripe.com' ..."), not the SDK's wrapper text."""
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        reason = getattr(seen, "reason", None)
        if isinstance(reason, BaseException):
            seen = reason
            continue
        inner = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        if inner is None:
            break
        seen = inner
    if seen is not None:
        text = _one_line(str(seen))
        # urllib3 prefixes the connection's repr: "HTTPConnection(host=..., port=...): why"
        head, sep, rest = text.partition("): ")
        return rest if sep and head.startswith(("HTTPConnection", "HTTPSConnection")) else text
    detail = _one_line(str(exc.user_message or exc))
    return detail.partition("(Network error: ")[2].rstrip(")") or detail


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(
    name: str, step: Callable[[Sequence[str]], int], argv: Sequence[str] | None = None
) -> None:
    """Run a step and exit with its code; every expected failure becomes one stderr line."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = step(args)
    except StripemeterError as exc:
        _fail(name, _describe_failure(exc), exc.code if isinstance(exc, StepError) else EXIT_ERROR)
    except stripe.StripeError as exc:
        _fail(name, _describe_stripe_error(exc), EXIT_ERROR)
    except KeyboardInterrupt:
        _fail(name, "interrupted", 130)
    except Exception as exc:  # the last line of defence: still one line, no traceback
        if _is_database_error(exc):
            _fail(name, f"database error: {exc}", EXIT_ERROR)
        _fail(name, f"unexpected error: {type(exc).__name__}: {exc}", EXIT_ERROR)
    sys.exit(code)


def _describe_failure(exc: StripemeterError) -> str:
    if isinstance(exc, ConfigError):
        return f"refused: {exc}"
    if isinstance(exc, DatabaseUnavailable):
        return f"database error: {exc}"
    return str(exc)


def _is_database_error(exc: Exception) -> bool:
    """A psycopg failure; psycopg is looked up, not imported, as a step that never
    loaded it cannot have raised one."""
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.Error)


def _fail(name: str, message: str, code: int) -> None:
    if traceback_wanted():
        traceback.print_exc()
    sys.stdout.flush()
    print(f"{name}: error: {_one_line(message)}", file=sys.stderr, flush=True)
    sys.exit(code)
