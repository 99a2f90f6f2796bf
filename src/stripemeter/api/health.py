"""Liveness and readiness.

`/health/live` answers as long as the process serves HTTP. `/health/ready` runs the
database check (a real `SELECT 1` with a short timeout) plus every callable in
`app.state.extra_health_checks` (added by the writer and reconciler), and reports the
worst status: 503 when the database is unreachable or any check is unhealthy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request

from stripemeter.db.pool import Pool
from stripemeter.jsonio import JsonResponse

router = APIRouter(tags=["operations"])
log = logging.getLogger("stripemeter.api.health")

HealthCheck = Callable[[], tuple[str, str, str]]
_RANK = {"ok": 0, "degraded": 1, "unhealthy": 2}
_OVERALL = {0: "healthy", 1: "degraded", 2: "unhealthy"}
DB_CHECK_TIMEOUT_S = 2.0


def database_check(pool: Pool) -> tuple[str, str, str]:
    """Borrow a connection and run `SELECT 1` within a couple of seconds."""
    try:
        with pool.connection(timeout=DB_CHECK_TIMEOUT_S) as conn:
            conn.execute("SET LOCAL statement_timeout = 2000")
            conn.execute("SELECT 1").fetchone()
    except Exception as exc:
        return "database", "unhealthy", f"unreachable: {type(exc).__name__}: {exc}".strip()
    return "database", "ok", "SELECT 1 answered"


def run_checks(pool: Pool, extra: list[HealthCheck]) -> tuple[str, dict[str, Any]]:
    """Run every check; return the overall status and the per-check details."""
    results = [database_check(pool)]
    for check in extra:
        try:
            results.append(check())
        except Exception as exc:  # a broken check must not break readiness itself
            name = getattr(check, "__name__", "check")
            results.append((name, "unhealthy", f"check failed: {exc}"))
    worst = max(_RANK.get(status, 2) for _, status, _ in results)
    checks = {name: {"status": status, "detail": detail} for name, status, detail in results}
    return _OVERALL[worst], checks


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/health/ready")
async def ready(request: Request) -> JsonResponse:
    """Whether this instance can do its job: 200 healthy/degraded, 503 unhealthy."""
    pool: Pool = request.app.state.pool
    extra: list[HealthCheck] = request.app.state.extra_health_checks
    overall, checks = await anyio.to_thread.run_sync(run_checks, pool, extra)
    status = 503 if overall == "unhealthy" else 200
    return JsonResponse({"status": overall, "checks": checks}, status_code=status)
