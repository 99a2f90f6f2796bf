"""The dev stack's settings: what `invoke` and its runners read, in one typed object.

`StackSettings` is the steps' settings (the runners pass them on) plus the runners' own
variables, read like every settings object (the environment, then `.env`, then these
defaults; see `stripemeter.config.EnvSettings`), so the local and the docker runner
can never read a variable differently. The service's `Settings` does not know these
variables, so a bad one stops `invoke`, never the API.

The worker intervals default shorter than the service's, so the demo's waits are short;
a value in the environment or `.env` wins, in both runners alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from steps._settings import StepSettings
from stripe_emulator import DEFAULT_PORT as EMULATOR_PORT
from stripemeter.config import PositiveMs
from stripemeter.errors import ConfigError

# A port something listens on: the emulator's, in either runner.
ListenPort = Annotated[int, Field(ge=1, le=65535)]
# A host port docker publishes a container on; 0 lets the engine pick a free one.
PublishedPort = Annotated[int, Field(ge=0, le=65535)]

API_PORT = 3000
POSTGRES_PORT = 5432
# Service settings every app process of the stack gets from these settings.
PASSTHROUGH_ENV = (
    "STRIPE_ACCOUNT",
    "STRIPE_MAX_CONCURRENCY",
    "RECONCILIATION_INTERVAL_MS",
    "STRIPE_WRITER_INTERVAL_MS",
    "RECONCILIATION_EPSILON",
    "MAX_INGEST_BATCH",
    "MAX_EVENT_META_BYTES",
    "MAX_FUTURE_SKEW_SECONDS",
    "DB_POOL_MAX_SIZE",
)
# What a stripemeter checkout holds (what `docker build` and the steps need).
CHECKOUT_MARKERS = ("pyproject.toml", "docker/Dockerfile", "steps/__init__.py")


class StackSettings(StepSettings):
    """Every variable the dev stack reads (see the module docstring)."""

    RECONCILIATION_INTERVAL_MS: PositiveMs = 5_000
    STRIPE_WRITER_INTERVAL_MS: PositiveMs = 500
    STRIPEMETER_RUNNER: Literal["local", "docker", "auto"] = "local"
    STRIPE_EMULATOR_PORT: ListenPort = EMULATOR_PORT
    # Unset: the emulator's own default.
    STRIPE_EMULATOR_ADVANCE_DELAY_MS: Annotated[int, Field(ge=0)] | None = None
    # The checkout the docker runner builds from; unset: the working directory or the
    # nearest parent of it that is one.
    STRIPEMETER_CHECKOUT: Path | None = None
    PYTHON_BASE_IMAGE: str = Field("python:3.12-slim", min_length=1)
    POSTGRES_IMAGE: str = Field("postgres:16-alpine", min_length=1)
    STRIPEMETER_IMAGE: str = Field("stripemeter:local", min_length=1)
    STRIPEMETER_DEMO_IMAGE: str = Field("stripemeter-demo:local", min_length=1)
    STRIPEMETER_DOCKER_PROJECT: str = Field("stripemeter", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    STRIPEMETER_API_PORT: PublishedPort = API_PORT
    STRIPEMETER_POSTGRES_PORT: PublishedPort = POSTGRES_PORT

    def service_environment(self) -> dict[str, str]:
        """The `PASSTHROUGH_ENV` values as variables for an app process."""
        return {name: str(getattr(self, name)) for name in PASSTHROUGH_ENV}

    def checkout(self, start: Path | None = None) -> Path:
        """The stripemeter checkout (see `find_checkout`)."""
        return find_checkout(self.STRIPEMETER_CHECKOUT, start)


def find_checkout(explicit: Path | None, start: Path | None = None) -> Path:
    """`explicit` when it is a checkout; else `start` (the working directory) or the
    nearest parent that is one; else a `ConfigError` saying what to do."""
    if explicit is not None:
        missing = [m for m in CHECKOUT_MARKERS if not (explicit / m).is_file()]
        if missing:
            raise ConfigError(
                f"STRIPEMETER_CHECKOUT={str(explicit)!r} is not a stripemeter checkout "
                f"(no {', '.join(missing)})"
            )
        return explicit.resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if all((candidate / m).is_file() for m in CHECKOUT_MARKERS):
            return candidate
    raise ConfigError(
        f"{here} is not inside a stripemeter checkout (no {CHECKOUT_MARKERS[1]} here or "
        "above): run from the checkout or set STRIPEMETER_CHECKOUT"
    )
