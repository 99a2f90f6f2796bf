"""Liveness and readiness.

`/health` (StripeMeter's name, with the server's time) and `/health/live` answer as
long as the process serves HTTP. `/health/ready` runs the database check (a real
`SELECT 1` with a short timeout) plus every callable in `app.state.extra_health_checks`
(added by the writer and reconciler), and reports the worst status: 503 when the
database is unreachable or any check is unhealthy. Its `stripe.mode` says which Stripe
the instance uses (`live`, `test`, `emulator`, or `refused`; `app.state.stripe_mode`,
set by `create_app`).

The answer says nothing about tenants: a failing writer is "Stripe failing for 2
tenant(s)". Callers allowed tenant detail (see `api.metrics.disclosure_for`) also get
what each callable in `app.state.health_details` adds to its check (which tenants
fail, Stripe's error text), limited to their own tenant for an admin key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from stripemeter.api.metrics import Disclosure, disclosure_for
from stripemeter.api.schemas import AUTH_ERRORS, Health, Liveness, Readiness, error_responses
from stripemeter.db.pool import Pool
from stripemeter.jsonio import JsonResponse, iso

router = APIRouter(tags=["operations"])
log = logging.getLogger("stripemeter.api.health")

HealthCheck = Callable[[], tuple[str, str, str]]
# (tenant or None for every tenant) -> (check name, fields to add to that check)
HealthDetail = Callable[[str | None], tuple[str, dict[str, Any]]]
_RANK = {"ok": 0, "degraded": 1, "unhealthy": 2}
_OVERALL = {0: "healthy", 1: "degraded", 2: "unhealthy"}
DB_CHECK_TIMEOUT_S = 2.0


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
    return JsonResponse(
        {"status": overall, "stripe": {"mode": mode}, "checks": checks}, status_code=status
    )
