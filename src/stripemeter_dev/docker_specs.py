"""The docker stack as data: what `DockerRunner` starts and `docker-compose.yml` describes.

`DockerSettings` gathers what the stack depends on (images, host ports, project name,
Stripe target, the state dir), taken from `StackSettings`; `image_builds` says which
images docker/Dockerfile makes (the service image, and the steps' image with the `demo`
extra), and `service_specs` and `step_spec` turn the settings into one `ServiceSpec` per
container. Pure data, no engine: the compose parity test compares
these with the compose file, and `stripemeter_dev.docker` turns them into containers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stripe_emulator import DEFAULT_PORT as EMULATOR_PORT
from stripemeter_dev.runner import STEP_NAMES, RunnerError
from stripemeter_dev.settings import API_PORT, PASSTHROUGH_ENV, POSTGRES_PORT, StackSettings

__all__ = ["API_PORT", "EMULATOR_PORT", "PASSTHROUGH_ENV", "POSTGRES_PORT"]

LABEL_PROJECT = "io.stripemeter.project"
LABEL_SERVICE = "io.stripemeter.service"
DOCKERFILE = "docker/Dockerfile"
DB_NAME = DB_USER = DB_PASSWORD = "stripemeter"
STATE_MOUNT = "/state"
# The checkout's scenarios/, read-only, in the scenario step's container.
SCENARIOS_MOUNT = "/scenarios"
# The emulator's state (a named volume, `<project>-emulator-state`): `down` keeps it,
# `invoke emulator-reset` empties it. docker/Dockerfile creates the directory for the
# service user, so a fresh volume starts writable.
EMULATOR_STATE_MOUNT = "/var/lib/stripe-emulator"
# PostgreSQL's data (a named volume, `<project>-pgdata`), kept by `down` for the same
# reason: the ledger and the emulator's objects must survive a restart together, as the
# local runner's STRIPEMETER_HOME does. `docker volume rm <project>-pgdata` forgets it.
POSTGRES_DATA_MOUNT = "/var/lib/postgresql/data"
# The extra (pyproject.toml) the step image installs on top of the service's
# dependencies: jq for `validate`. The service image installs no extra.
STEP_IMAGE_EXTRA = "demo"


@dataclass(frozen=True)
class ImageBuild:
    """One image built from docker/Dockerfile: its tag and its build arguments."""

    tag: str
    buildargs: Mapping[str, str]


@dataclass(frozen=True)
class DockerSettings:
    """What the docker runner needs to know; defaults are what users get without config.

    Host ports are on 127.0.0.1; 0 lets the engine pick a free one (tests do this, so
    they never collide with a running demo). `project` prefixes every name and labels
    everything, so two projects on one engine stay apart. Made from `StackSettings`
    (`from_settings`); tests replace fields with `dataclasses.replace`.
    """

    project: str = "stripemeter"
    app_image: str = "stripemeter:local"
    step_image: str = "stripemeter-demo:local"
    base_image: str = "python:3.12-slim"
    postgres_image: str = "postgres:16-alpine"
    api_port: int = API_PORT
    emulator_port: int = EMULATOR_PORT
    postgres_port: int = POSTGRES_PORT
    state_dir: Path = Path("demo-state")
    checkout: Path | None = None
    stripe_secret_key: str = ""
    stripe_api_base: str = ""
    emulator_advance_delay_ms: int | None = None
    build_on_up: bool = True
    app_env: Mapping[str, str] = field(default_factory=dict)
    step_user: str | None = None
    step_wait_timeout_s: float | None = None
    step_traceback: bool = False

    @classmethod
    def from_settings(cls, settings: StackSettings) -> DockerSettings:
        """The docker runner's view of the stack's settings."""
        return cls(
            project=settings.STRIPEMETER_DOCKER_PROJECT,
            app_image=settings.STRIPEMETER_IMAGE,
            step_image=settings.STRIPEMETER_DEMO_IMAGE,
            base_image=settings.PYTHON_BASE_IMAGE,
            postgres_image=settings.POSTGRES_IMAGE,
            api_port=settings.STRIPEMETER_API_PORT,
            emulator_port=settings.STRIPE_EMULATOR_PORT,
            postgres_port=settings.STRIPEMETER_POSTGRES_PORT,
            state_dir=Path(settings.DEMO_STATE_DIR).resolve(),
            checkout=settings.STRIPEMETER_CHECKOUT,
            stripe_secret_key=settings.STRIPE_SECRET_KEY or "",
            stripe_api_base=settings.STRIPE_API_BASE or "",
            emulator_advance_delay_ms=settings.STRIPE_EMULATOR_ADVANCE_DELAY_MS,
            app_env=settings.service_environment(),
            step_wait_timeout_s=settings.DEMO_WAIT_TIMEOUT_S,
            step_traceback=settings.STEPS_TRACEBACK,
            step_user=f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None,
        )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> DockerSettings:
        """`from_settings` of the stack's settings read now (from `environ`, if given)."""
        return cls.from_settings(StackSettings.load(environ))

    @property
    def network(self) -> str:
        """The dedicated network every container of this project joins."""
        return f"{self.project}-net"

    @property
    def uses_emulator(self) -> bool:
        """The emulator runs unless a Stripe key or another STRIPE_API_BASE is set."""
        return not self.stripe_secret_key and not self.stripe_api_base

    def container_name(self, service: str) -> str:
        """The container name of a service (`<project>-<service>`)."""
        return f"{self.project}-{service}"

    @property
    def emulator_volume(self) -> str:
        """The named volume holding the emulator's state."""
        return f"{self.project}-emulator-state"

    @property
    def postgres_volume(self) -> str:
        """The named volume holding PostgreSQL's data directory."""
        return f"{self.project}-pgdata"


def image_builds(settings: DockerSettings) -> list[ImageBuild]:
    """The service image (no extra: no docker, invoke or jq) and the steps' image."""
    return [
        ImageBuild(settings.app_image, {"BASE_IMAGE": settings.base_image, "EXTRAS": ""}),
        ImageBuild(
            settings.step_image, {"BASE_IMAGE": settings.base_image, "EXTRAS": STEP_IMAGE_EXTRA}
        ),
    ]


@dataclass(frozen=True)
class ServiceSpec:
    """One container of the stack, as data: compose must describe the same thing."""

    name: str
    image: str
    command: tuple[str, ...]
    environment: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[int, int] = field(default_factory=dict)  # container port -> host port
    healthcheck: tuple[str, ...] | None = None
    one_shot: bool = False
    volumes: Mapping[str, str] = field(default_factory=dict)  # named volume -> container path


def _stripe_env(settings: DockerSettings) -> dict[str, str]:
    base = (
        f"http://emulator:{EMULATOR_PORT}" if settings.uses_emulator else settings.stripe_api_base
    )
    return {"STRIPE_SECRET_KEY": settings.stripe_secret_key, "STRIPE_API_BASE": base}


def database_url_in_network() -> str:
    """The DATABASE_URL containers on the project network use."""
    return f"postgresql://{DB_USER}:{DB_PASSWORD}@postgres:{POSTGRES_PORT}/{DB_NAME}"


def service_specs(settings: DockerSettings) -> list[ServiceSpec]:
    """The stack in start order: postgres, emulator (unless a key is set), migrate, api, workers.

    The API runs with `--no-workers` next to a separate workers container, both with
    BYPASS_AUTH=1 as the demo needs; that is safe only because ports bind 127.0.0.1.
    """
    app_env = {
        "DATABASE_URL": database_url_in_network(),
        **_stripe_env(settings),
        **{name: settings.app_env.get(name, "") for name in PASSTHROUGH_ENV},
    }
    specs = [
        ServiceSpec(
            name="postgres",
            image=settings.postgres_image,
            command=(),
            environment={
                "POSTGRES_USER": DB_USER,
                "POSTGRES_PASSWORD": DB_PASSWORD,
                "POSTGRES_DB": DB_NAME,
            },
            ports={POSTGRES_PORT: settings.postgres_port},
            healthcheck=("pg_isready", "-h", "127.0.0.1", "-U", DB_USER, "-d", DB_NAME),
            volumes={settings.postgres_volume: POSTGRES_DATA_MOUNT},
        )
    ]
    if settings.uses_emulator:
        command = [
            "stripe-emulator",
            "--host",
            "0.0.0.0",
            "--port",
            str(EMULATOR_PORT),
            "--state-dir",
            EMULATOR_STATE_MOUNT,
        ]
        if settings.emulator_advance_delay_ms is not None:
            command += ["--advance-delay-ms", str(settings.emulator_advance_delay_ms)]
        specs.append(
            ServiceSpec(
                name="emulator",
                image=settings.app_image,
                command=tuple(command),
                ports={EMULATOR_PORT: settings.emulator_port},
                healthcheck=("healthcheck", f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health"),
                volumes={settings.emulator_volume: EMULATOR_STATE_MOUNT},
            )
        )
    specs += [
        ServiceSpec(
            name="migrate",
            image=settings.app_image,
            command=("stripemeter", "migrate"),
            environment={"DATABASE_URL": database_url_in_network()},
            one_shot=True,
        ),
        ServiceSpec(
            name="api",
            image=settings.app_image,
            command=(
                "stripemeter",
                "api",
                "--host",
                "0.0.0.0",
                "--port",
                str(API_PORT),
                "--no-workers",
                "--insecure-bypass-auth-anywhere",
            ),
            environment={**app_env, "BYPASS_AUTH": "1"},
            ports={API_PORT: settings.api_port},
            healthcheck=("healthcheck", f"http://127.0.0.1:{API_PORT}/health/ready"),
        ),
        ServiceSpec(
            name="workers",
            image=settings.app_image,
            command=("stripemeter", "workers"),
            environment=app_env,
            healthcheck=("healthcheck",),
        ),
    ]
    return specs


def step_spec(settings: DockerSettings, step: str, args: Sequence[str] = ()) -> ServiceSpec:
    """The one-shot container of a demo step (`python -m steps.<step>`)."""
    if step not in STEP_NAMES:
        raise RunnerError(f"unknown step {step!r}: expected one of {', '.join(STEP_NAMES)}")
    wait = settings.step_wait_timeout_s
    return ServiceSpec(
        name=f"step-{step}",
        image=settings.step_image,
        command=("python", "-m", f"steps.{step}", *args),
        environment={
            "API_HOST": f"api:{API_PORT}",
            "DATABASE_URL": database_url_in_network(),
            **_stripe_env(settings),
            "RECONCILIATION_EPSILON": settings.app_env.get("RECONCILIATION_EPSILON", ""),
            "DEMO_STATE_DIR": STATE_MOUNT,
            # Empty means unset: the step picks the default for the Stripe it talks to.
            "DEMO_WAIT_TIMEOUT_S": "" if wait is None else str(wait),
            "STEPS_TRACEBACK": "1" if settings.step_traceback else "0",
        },
        one_shot=True,
    )
