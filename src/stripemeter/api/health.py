"""Liveness and readiness.

`/health` (StripeMeter's name, with the server's time) and `/health/live` answer as
long as the process serves HTTP. `/health/ready` runs the database check (a real
`SELECT 1` with a short timeout) plus every callable in `app.state.extra_health_checks`
(added by the writer and reconciler), and reports the worst status: 503 when the
database is unreachable or any check is unhealthy. Its `stripe.mode` says which Stripe
the instance uses (`live`, `test`, `emulator`, or `refused`; `app.state.stripe_mode`,
set by `create_app`). `reasons` names, one line per check, what is not ok.

The `stripe` check (`StripeProbe`, installed by `install_stripe_probe` unless the Stripe
settings are refused) asks the configured Stripe's address for any HTTP answer: none
(refused, timed out) or a 5xx is `degraded`, naming the URL — ingest still works and the
writer catches up later, so the instance stays in rotation (200). Its result is kept
for STRIPE_HEALTH_CACHE_S, so frequent readiness checks do not hammer Stripe, and then
refreshed in the background: readiness never waits on a hanging Stripe (but once).

The answer says nothing about tenants: a failing writer is "Stripe failing for 2
tenant(s)". Callers allowed tenant detail (see `api.metrics.disclosure_for`) also get
what each callable in `app.state.health_details` adds to its check (which tenants
fail, Stripe's error text), limited to their own tenant for an admin key.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import requests
from fastapi import APIRouter, FastAPI, Request

from stripemeter.api.metrics import Disclosure, disclosure_for
from stripemeter.api.schemas import AUTH_ERRORS, Health, Liveness, Readiness, error_responses
from stripemeter.config import Settings
from stripemeter.db.pool import Pool
from stripemeter.errors import StripeConfigError
from stripemeter.jsonio import JsonResponse, iso
from stripemeter.stripe.client import REAL_STRIPE_BASE, service_target

router = APIRouter(tags=["operations"])
log = logging.getLogger("stripemeter.api.health")

HealthCheck = Callable[[], tuple[str, str, str]]
# (tenant or None for every tenant) -> (check name, fields to add to that check)
HealthDetail = Callable[[str | None], tuple[str, dict[str, Any]]]
_RANK = {"ok": 0, "degraded": 1, "unhealthy": 2}
_OVERALL = {0: "healthy", 1: "degraded", 2: "unhealthy"}
DB_CHECK_TIMEOUT_S = 2.0
STRIPE_PROBE_TIMEOUT_S = 2.0


class StripeProbe:
    """The `stripe` readiness check: does `base_url` give any HTTP answer?

    A readiness check never waits on Stripe once a first answer is known: a result older
    than `ttl_s` is still returned while one background probe refreshes it, so a Stripe
    that hangs cannot make `/health/ready` itself time out (orchestrators give it about a
    second, then pull the instance out of rotation, though ingest needs no Stripe). Only
    the very first check waits, at most `timeout_s`, for the first probe. One probe runs
    at a time, whatever the number of concurrent checks.
    """

    def __init__(self, base_url: str, ttl_s: float, timeout_s: float = STRIPE_PROBE_TIMEOUT_S):
        self.base_url = base_url
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._result: tuple[str, str, str] | None = None
        self._until = 0.0
        self._probing = False
        self._first = threading.Event()

    def __call__(self) -> tuple[str, str, str]:
        with self._lock:
            result = self._result
            if (result is None or time.monotonic() >= self._until) and not self._probing:
                self._probing = True
                threading.Thread(
                    target=self._refresh, name="stripemeter-stripe-probe", daemon=True
                ).start()
        if result is None:
            self._first.wait(self.timeout_s + 1.0)
            with self._lock:
                result = self._result
        if result is None:  # the first probe outlived its own timeout
            return "stripe", "degraded", f"Stripe at {self.base_url}: no answer yet"
        return result

    def _refresh(self) -> None:
        try:
            result = self._probe()
        except Exception as exc:  # a broken probe is reported, never left "probing"
            result = "stripe", "degraded", f"the Stripe probe failed: {type(exc).__name__}"
        with self._lock:
            self._result = result
            self._until = time.monotonic() + self.ttl_s
            self._probing = False
        self._first.set()

    def _probe(self) -> tuple[str, str, str]:
        try:
            answer = requests.get(self.base_url, timeout=self.timeout_s, allow_redirects=False)
        except requests.RequestException as exc:
            return "stripe", "degraded", f"Stripe unreachable at {self.base_url}: {_why(exc)}"
        if answer.status_code >= 500:
            return (
                "stripe",
                "degraded",
                f"Stripe at {self.base_url} answers HTTP {answer.status_code}",
            )
        return "stripe", "ok", f"Stripe at {self.base_url} answers"


def _why(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return f"no answer within {STRIPE_PROBE_TIMEOUT_S:g} s"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


def install_stripe_probe(app: FastAPI, settings: Settings) -> None:
    """Add the `stripe` check for the configured Stripe (none when its settings are
    refused: `stripe.mode` already says so, and there is nothing to probe)."""
    try:
        target = service_target(settings)
    except StripeConfigError:
        return
    probe = StripeProbe(target.base or REAL_STRIPE_BASE, settings.STRIPE_HEALTH_CACHE_S)
    app.state.stripe_probe = probe
    app.state.extra_health_checks.append(probe)


def database_check(pool: Pool, *, verbose: bool = False) -> tuple[str, str, str]:
    """Borrow a connection and run `SELECT 1` within a couple of seconds.

    The driver's message (host, port, user) is given only when `verbose`.
    """
    try:
        with pool.connection(timeout=DB_CHECK_TIMEOUT_S) as conn:
            conn.execute("SET LOCAL statement_timeout = 2000")
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}".strip() if verbose else type(exc).__name__
        return "database", "unhealthy", f"unreachable: {reason}"
    return "database", "ok", "SELECT 1 answered"


def run_checks(
    pool: Pool,
    extra: list[HealthCheck],
    details: list[HealthDetail] | None = None,
    disclosure: Disclosure | None = None,
) -> tuple[str, dict[str, Any]]:
    """Run every check; return the overall status and the per-check details.

    With a `disclosure` allowing tenant detail, each of `details` adds its fields.
    """
    detail = disclosure is not None and disclosure.tenant_detail
    results = [database_check(pool, verbose=detail)]
    for check in extra:
        try:
            results.append(check())
        except Exception as exc:  # a broken check must not break readiness itself
            name = getattr(check, "__name__", "check")
            results.append((name, "unhealthy", f"check failed: {exc}"))
    worst = max(_RANK.get(status, 2) for _, status, _ in results)
    checks: dict[str, dict[str, Any]] = {
        name: {"status": status, "detail": text} for name, status, text in results
    }
    if detail and disclosure is not None:
        for add_detail in details or []:
            try:
                name, fields = add_detail(disclosure.tenant_id)
            except Exception as exc:  # detail is extra: its failure is reported, not fatal
                log.warning("health detail failed: %s", type(exc).__name__)
                continue
            if name in checks:
                checks[name].update(fields)
    return _OVERALL[worst], checks


@router.get("/health", response_model=Health)
async def health() -> JsonResponse:
    """StripeMeter's health call: the process is up, and its clock (liveness, no checks)."""
    return JsonResponse({"status": "ok", "timestamp": iso(datetime.now(UTC))})


@router.get("/health/live", response_model=Liveness)
async def live() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get(
    "/health/ready",
    response_model=Readiness,
    responses={
        503: {"model": Readiness, "description": "unhealthy: a check failed (see `checks`)"},
        **error_responses(AUTH_ERRORS),
    },
)
async def ready(request: Request) -> JsonResponse:
    """Whether this instance can do its job: 200 healthy/degraded, 503 unhealthy."""
    disclosure = await disclosure_for(request)
    pool: Pool = request.app.state.pool
    extra: list[HealthCheck] = request.app.state.extra_health_checks
    details: list[HealthDetail] = getattr(request.app.state, "health_details", [])
    overall, checks = await anyio.to_thread.run_sync(run_checks, pool, extra, details, disclosure)
    status = 503 if overall == "unhealthy" else 200
    mode = getattr(request.app.state, "stripe_mode", "refused")
    reasons = [f"{name}: {c['detail']}" for name, c in checks.items() if c["status"] != "ok"]
    return JsonResponse(
        {"status": overall, "reasons": reasons, "stripe": {"mode": mode}, "checks": checks},
        status_code=status,
    )
