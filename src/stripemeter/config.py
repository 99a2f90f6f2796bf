"""How every stripemeter process reads its configuration, and the service's settings.

`EnvSettings` is the one loader: a typed settings class reads its variables from the
environment, then from `.env` in the working directory, then its defaults (the
environment wins), and `load` turns a bad value into one `ConfigError` line naming the
variable. Each kind of process has its own class on that base, holding only what it
reads: `Settings` here (the API, the workers, the `stripemeter` CLI),
`stripemeter_dev.settings.StackSettings` (the dev stack's runners) and
`steps._settings.StepSettings` (the demo steps). A variable one of them does not know
is ignored by it, so a dev-stack variable can never stop the service from starting.

This module is the only code that touches `os.environ`: the settings classes read it,
and `current_environment`/`export_to_child_processes` hand it to processes started
from here (the runners' children, uvicorn's workers).
"""

from __future__ import annotations

import contextvars
import os
import types
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from stripemeter.errors import ConfigError

PositiveMs = Annotated[int, Field(gt=0)]
# Values never echoed in an error message: they may hold a password or a key.
SECRET_VARIABLES = frozenset({"DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"})

# The environment `EnvSettings.load` reads instead of os.environ, when it is given one.
_explicit_environ: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "stripemeter_explicit_environ", default=None
)


class _MappingEnvSource(EnvSettingsSource):
    """The environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._environ


def _admits_none(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _admits_none(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return any(_admits_none(arg) for arg in get_args(annotation))
    return annotation is type(None)


class EnvSettings(BaseSettings):
    """Base of every settings class: environment, then `.env`, then defaults."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Explicit values, then the environment (os.environ or the one given), then `.env`."""
        environ = _explicit_environ.get()
        if environ is not None:
            env_settings = _MappingEnvSource(settings_cls, environ)
        return init_settings, env_settings, dotenv_settings

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object, info: ValidationInfo) -> object:
        """An empty optional variable (`FOO=` in .env) means "not set"."""
        blank = isinstance(value, str) and not value.strip()
        if blank and info.field_name and _admits_none(cls.model_fields[info.field_name].annotation):
            return None
        return value

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Read and validate; raise one `ConfigError` naming each bad variable.

        `environ` replaces os.environ as the environment (`.env` is still read);
        `overrides` win over both.
        """
        token = _explicit_environ.set(environ)
        try:
            return cls(**overrides)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None
        finally:
            _explicit_environ.reset(token)


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"]) or "settings"
        message = str(err["msg"]).removeprefix("Value error, ")
        if name in SECRET_VARIABLES:
            problems.append(f"{name}: {message}")
        else:
            problems.append(f"{name}: {message} (got {err.get('input')!r})")
    return "invalid configuration: " + "; ".join(problems)


def current_environment() -> dict[str, str]:
    """A copy of this process's environment, for the processes it starts."""
    return dict(os.environ)


def export_to_child_processes(values: Mapping[str, str]) -> None:
    """Set variables that processes started from here on read as their settings
    (uvicorn's `--workers` children, which get no other channel)."""
    os.environ.update(values)


class Settings(EnvSettings):
    """Every variable the service (API, workers, CLI) reads, typed, with its default."""

    DATABASE_URL: str | None = None
    STRIPEMETER_HOME: Path = Path(".stripemeter")
    API_HOST: str = "localhost:3000"
    BYPASS_AUTH: bool = False
    # Tenant ids: any printable name of up to 64 characters, or only UUIDs when true
    # (stripemeter.tenants).
    STRICT_TENANT_ID_UUID: bool = False
    # Show per-tenant series on /metrics and /health/ready without an admin key
    # (for a scraper on a private network); off, they need an admin key.
    METRICS_TENANT_DETAIL: bool = False
    STRIPE_SECRET_KEY: str | None = None
    STRIPE_API_BASE: str | None = None
    # The explicit opt-in to live mode (or `--live`): only then are sk_live_/rk_live_
    # keys accepted, and only they (see `stripemeter.stripe.client`).
    STRIPEMETER_LIVE: bool = False
    STRIPE_ACCOUNT: str = "default"
    # The `whsec_` secret of the webhook endpoint (`stripemeter webhooks setup` prints it);
    # unset, POST /v1/stripe/webhooks answers 404 and the polling loops do all the work.
    STRIPE_WEBHOOK_SECRET: str | None = None
    # How old a webhook's signed timestamp may be (replay window, Stripe's default 300 s).
    STRIPE_WEBHOOK_TOLERANCE_S: Annotated[int, Field(ge=1, le=86_400)] = 300
    STRIPE_MAX_CONCURRENCY: Annotated[int, Field(ge=1, le=100)] = 4
    RECONCILIATION_INTERVAL_MS: PositiveMs = 60_000
    STRIPE_WRITER_INTERVAL_MS: PositiveMs = 5_000
    # How the writer sends meter events: `v1`, one `POST /v1/billing/meter_events` per
    # event; `v2`, the meter event stream, up to 100 events of any customers per request
    # (docs/writer-transports.md). Same identifiers and outbox either way.
    WRITER_TRANSPORT: Literal["v1", "v2"] = "v1"
    # Parity: drift_abs == 0 or drift_pct <= this (`reconciler.drift.within_tolerance`).
    RECONCILIATION_EPSILON: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.005")
    # Apply corrections after close as soon as the reconciler proposes them (an invoice
    # item or a credit note in Stripe); off: they wait for `stripemeter corrections apply`
    # or POST /v1/corrections/{id}/apply.
    CORRECTIONS_AUTO_APPLY: bool = False
    MAX_INGEST_BATCH: Annotated[int, Field(ge=1, le=100_000)] = 1000
    MAX_EVENT_META_BYTES: Annotated[int, Field(ge=0)] = 4096
    MAX_FUTURE_SKEW_SECONDS: Annotated[int, Field(ge=0)] = 300
    # An event beyond its test-clock customer's known frozen_time + skew makes ingest re-read
    # that clock from Stripe before refusing it; at most once per customer this often.
    CLOCK_REREAD_INTERVAL_S: Annotated[float, Field(ge=0, le=3600)] = 5.0
    DB_POOL_MAX_SIZE: Annotated[int, Field(ge=1, le=200)] = 10
    # Group commit (`ingest.group`): a group closes at this many events, or this long
    # after its first request arrived, and this many threads per API process store groups.
    INGEST_GROUP_MAX_EVENTS: Annotated[int, Field(ge=1, le=100_000)] = 2000
    INGEST_GROUP_MAX_WAIT_MS: Annotated[float, Field(ge=0, le=1000)] = 0.0
    INGEST_WRITER_THREADS: Annotated[int, Field(ge=1, le=32)] = 1
    # Seconds every Stripe HTTP call may take (connect + read) before it fails and the
    # gateway's retry policy decides; a hanging Stripe can then hold nothing forever.
    STRIPE_TIMEOUT_S: Annotated[float, Field(gt=0, le=300)] = 20.0
    # `/health/ready` asks Stripe whether it answers at most once this often per process,
    # in the background (`api.health.StripeProbe`); a check answers with the last result.
    STRIPE_HEALTH_CACHE_S: Annotated[float, Field(ge=0, le=3600)] = 5.0
    # Background reconciliation in the API: this many threads run the queued runs (one
    # queued run per tenant), on their own pool of this many connections, so that
    # reconciliation can never take the connections ingest and reads need.
    RECONCILIATION_THREADS: Annotated[int, Field(ge=1, le=32)] = 2
    BACKGROUND_POOL_MAX_SIZE: Annotated[int, Field(ge=1, le=50)] = 2
    # How long `POST /v1/reconciliation/run?wait=true` waits for the run before it
    # answers 202 with the run id (poll `GET /v1/reconciliation/runs/{id}`).
    RECONCILIATION_WAIT_S: Annotated[float, Field(ge=0, le=300)] = 25.0
    # The ledger's monthly partitions (stripemeter.db.partitions): the workers keep this
    # month and this many ahead created, every LEDGER_MAINTENANCE_INTERVAL_MS; with a
    # retention > 0 they detach (never drop) partitions older than that many months.
    LEDGER_PARTITIONS_AHEAD: Annotated[int, Field(ge=0, le=36)] = 3
    LEDGER_RETENTION_MONTHS: Annotated[int, Field(ge=0, le=1200)] = 0
    LEDGER_MAINTENANCE_INTERVAL_MS: PositiveMs = 3_600_000
    # Worked webhook rows (the dedupe record) older than this many days are deleted by the
    # same maintenance step (`webhooks.retention`); 0 keeps them forever.
    WEBHOOK_RETENTION_DAYS: Annotated[int, Field(ge=0, le=3650)] = 30
    # Set by `stripemeter api --workers-processes N` for its children: the pid they watch.
    STRIPEMETER_SUPERVISOR_PID: Annotated[int, Field(gt=0)] | None = None
    # Test seam: the writer exits right after Stripe accepted this many meter events.
    STRIPEMETER_WRITER_CRASH_AFTER_ACCEPTS: Annotated[int, Field(gt=0)] | None = None

    @field_validator("DATABASE_URL")
    @classmethod
    def _postgres_conninfo(cls, value: str | None) -> str | None:
        """A libpq connection string or URL; refused here, not as a traceback later."""
        if value is None:
            return None
        from psycopg.conninfo import conninfo_to_dict

        hint = "use postgresql://user:password@host:5432/dbname, or unset it for the embedded one"
        if "://" in value and value.split("://")[0] not in ("postgresql", "postgres"):
            raise ValueError(f"not a postgresql:// URL; {hint}")
        try:
            params = conninfo_to_dict(value)
        except Exception:  # psycopg.ProgrammingError, whose text would echo the secret
            raise ValueError(f"not a connection string libpq can parse; {hint}") from None
        for port in str(params.get("port", "")).split(","):
            if port and not (port.isdigit() and 1 <= int(port) <= 65535):
                raise ValueError(f"port {port!r} is not a number 1-65535; {hint}")
        return value

    @field_validator("STRIPE_WEBHOOK_SECRET")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is not None and not value.strip().startswith("whsec_"):
            raise ValueError(
                "not a webhook signing secret (expected whsec_...; "
                "`stripemeter webhooks setup --url URL` prints one)"
            )
        return None if value is None else value.strip()

    @property
    def api_base_url(self) -> str:
        """`API_HOST` as a base URL (`localhost:3000` -> `http://localhost:3000`)."""
        host = self.API_HOST
        return host if "://" in host else f"http://{host}"


def load_settings(**overrides: Any) -> Settings:
    """The service's settings; raise `ConfigError` naming each bad variable."""
    return Settings.load(**overrides)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
