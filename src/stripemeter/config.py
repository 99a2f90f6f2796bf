"""One typed settings object for every process: API, workers, CLI and demo steps.

Values come from the environment, then from `.env` in the working directory, then
from the defaults below (the same defaults `.env.example` documents). A bad value
raises `ConfigError` naming the variable, so a process fails at start-up instead of
misbehaving later.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stripemeter.errors import ConfigError

PositiveMs = Annotated[int, Field(gt=0)]


class Settings(BaseSettings):
    """Every variable the project reads, typed, with its default."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=True,
    )

    DATABASE_URL: str | None = None
    STRIPEMETER_HOME: Path = Path(".stripemeter")
    API_HOST: str = "localhost:3000"
    BYPASS_AUTH: bool = False
    # Show per-tenant series on /metrics and /health/ready without an admin key
    # (for a scraper on a private network); off, they need an admin key.
    METRICS_TENANT_DETAIL: bool = False
    STRIPE_SECRET_KEY: str | None = None
    STRIPE_API_BASE: str | None = None
    STRIPE_ACCOUNT: str = "default"
    STRIPE_MAX_CONCURRENCY: Annotated[int, Field(ge=1, le=100)] = 4
    RECONCILIATION_INTERVAL_MS: PositiveMs = 60_000
    STRIPE_WRITER_INTERVAL_MS: PositiveMs = 5_000
    RECONCILIATION_EPSILON: Annotated[Decimal, Field(ge=0, le=1)] = Decimal("0.005")
    MAX_INGEST_BATCH: Annotated[int, Field(ge=1, le=100_000)] = 1000
    MAX_EVENT_META_BYTES: Annotated[int, Field(ge=0)] = 4096
    MAX_FUTURE_SKEW_SECONDS: Annotated[int, Field(ge=0)] = 300
    DB_POOL_MAX_SIZE: Annotated[int, Field(ge=1, le=200)] = 10
    # Seconds every Stripe HTTP call may take (connect + read) before it fails and the
    # gateway's retry policy decides; a hanging Stripe can then hold nothing forever.
    STRIPE_TIMEOUT_S: Annotated[float, Field(gt=0, le=300)] = 20.0
    # Background reconciliation in the API: this many threads run the queued runs (one
    # queued run per tenant), on their own pool of this many connections, so that
    # reconciliation can never take the connections ingest and reads need.
    RECONCILIATION_THREADS: Annotated[int, Field(ge=1, le=32)] = 2
    BACKGROUND_POOL_MAX_SIZE: Annotated[int, Field(ge=1, le=50)] = 2
    # How long `POST /v1/reconciliation/run?wait=true` waits for the run before it
    # answers 202 with the run id (poll `GET /v1/reconciliation/runs/{id}`).
    RECONCILIATION_WAIT_S: Annotated[float, Field(ge=0, le=300)] = 25.0
    DEMO_STATE_DIR: Path = Path("demo-state")
    STRIPEMETER_RUNNER: str = "local"

    @field_validator("DATABASE_URL", "STRIPE_SECRET_KEY", "STRIPE_API_BASE", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """An empty variable (`FOO=` in .env) means "not set", as in the seed's .env."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("STRIPEMETER_RUNNER")
    @classmethod
    def _known_runner(cls, value: str) -> str:
        if value not in ("local", "docker", "auto"):
            raise ValueError("must be one of local, docker, auto")
        return value

    @property
    def api_base_url(self) -> str:
        """`API_HOST` as a base URL (`localhost:3000` -> `http://localhost:3000`)."""
        host = self.API_HOST
        return host if "://" in host else f"http://{host}"


def load_settings(**overrides: object) -> Settings:
    """Read and validate settings; raise `ConfigError` naming each bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(part) for part in err["loc"]) or "settings"
            problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
