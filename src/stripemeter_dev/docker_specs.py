"""The docker stack as data: what `DockerRunner` starts and `docker-compose.yml` describes.

`DockerSettings` gathers what the stack depends on (images, host ports, project name,
Stripe target, the state dir); `service_specs` and `step_spec` turn it into one
`ServiceSpec` per container. Pure data, no engine: the compose parity test compares
these with the compose file, and `stripemeter_dev.docker` turns them into containers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from stripemeter.config import Settings, load_settings
from stripemeter_dev.runner import STEP_NAMES, RunnerError

LABEL_PROJECT = "io.stripemeter.project"
LABEL_SERVICE = "io.stripemeter.service"
DOCKERFILE = "docker/Dockerfile"
API_PORT = 3000
EMULATOR_PORT = 12111
POSTGRES_PORT = 5432
DB_NAME = DB_USER = DB_PASSWORD = "stripemeter"
STATE_MOUNT = "/state"
# Settings every app container receives unchanged from the host's configuration.
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
# Short worker intervals so the demo's waits are short, as the local runner does; a
# variable set in the environment wins.
DEMO_WORKER_ENV = {"STRIPE_WRITER_INTERVAL_MS": "500", "RECONCILIATION_INTERVAL_MS": "5000"}


@dataclass(frozen=True)
class DockerSettings:
    """What the docker runner needs to know; defaults are what users get without config.

    Host ports are on 127.0.0.1; 0 lets the engine pick a free one (tests do this, so
    they never collide with a running demo). `project` prefixes every name and labels
    everything, so two projects on one engine stay apart.
    """

    project: str = "stripemeter"
    app_image: str = "stripemeter:local"
    base_image: str = "python:3.12-slim"
    postgres_image: str = "postgres:16-alpine"
    api_port: int = API_PORT
    emulator_port: int = EMULATOR_PORT
    postgres_port: int = POSTGRES_PORT
    state_dir: Path = Path("demo-state")
    stripe_secret_key: str = ""
    stripe_api_base: str = ""
    emulator_advance_delay_ms: int | None = None
    build_on_up: bool = True
    app_env: Mapping[str, str] = field(default_factory=dict)
    step_user: str | None = None
    step_wait_timeout_s: str = "120"

    @classmethod
    def from_environment(
        cls, settings: Settings | None = None, environ: Mapping[str, str] | None = None
    ) -> DockerSettings:
        """Read the project's settings plus the docker-only variables.

        Like `Settings`, the docker variables come from the environment, then `.env`.
        """
        settings = settings or load_settings()
        if environ is None:
            from_file = {k: v for k, v in dotenv_values(".env").items() if v is not None}
            environ = {**from_file, **os.environ}
        env = environ

        def port(name: str, default: int) -> int:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            if not raw.isdigit() or int(raw) > 65535:
                raise RunnerError(f"{name} must be a port number 0-65535 (got {raw!r})")
            return int(raw)

        delay = env.get("STRIPE_EMULATOR_ADVANCE_DELAY_MS", "").strip()
        if delay and not delay.isdigit():
            raise RunnerError(
                f"STRIPE_EMULATOR_ADVANCE_DELAY_MS must be an integer (got {delay!r})"
            )
        values = settings.model_dump()
        return cls(
            project=env.get("STRIPEMETER_DOCKER_PROJECT", "").strip() or "stripemeter",
            app_image=env.get("STRIPEMETER_IMAGE", "").strip() or "stripemeter:local",
            base_image=env.get("PYTHON_BASE_IMAGE", "").strip() or "python:3.12-slim",
            postgres_image=env.get("POSTGRES_IMAGE", "").strip() or "postgres:16-alpine",
            api_port=port("STRIPEMETER_API_PORT", API_PORT),
            emulator_port=port("STRIPE_EMULATOR_PORT", EMULATOR_PORT),
            postgres_port=port("STRIPEMETER_POSTGRES_PORT", POSTGRES_PORT),
            state_dir=Path(settings.DEMO_STATE_DIR).resolve(),
            stripe_secret_key=settings.STRIPE_SECRET_KEY or "",
            stripe_api_base=settings.STRIPE_API_BASE or "",
            emulator_advance_delay_ms=int(delay) if delay else None,
            app_env={
                name: str(values[name])
                if name in env
                else DEMO_WORKER_ENV.get(name, str(values[name]))
                for name in PASSTHROUGH_ENV
            },
            step_wait_timeout_s=env.get("DEMO_WAIT_TIMEOUT_S", "").strip() or "120",
            step_user=f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else None,
        )

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
        )
    ]
    if settings.uses_emulator:
        command = ["stripe-emulator", "--host", "0.0.0.0", "--port", str(EMULATOR_PORT)]
        if settings.emulator_advance_delay_ms is not None:
            command += ["--advance-delay-ms", str(settings.emulator_advance_delay_ms)]
        specs.append(
            ServiceSpec(
                name="emulator",
                image=settings.app_image,
                command=tuple(command),
                ports={EMULATOR_PORT: settings.emulator_port},
                healthcheck=("healthcheck", f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health"),
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
    return ServiceSpec(
        name=f"step-{step}",
        image=settings.app_image,
        command=("python", "-m", f"steps.{step}", *args),
        environment={
            "API_HOST": f"api:{API_PORT}",
            "DATABASE_URL": database_url_in_network(),
            **_stripe_env(settings),
            "RECONCILIATION_EPSILON": settings.app_env.get("RECONCILIATION_EPSILON", ""),
            "DEMO_STATE_DIR": STATE_MOUNT,
            "DEMO_WAIT_TIMEOUT_S": settings.step_wait_timeout_s,
        },
        one_shot=True,
    )
