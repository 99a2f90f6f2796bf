"""`GET /v1/writer/status`: how much usage Stripe does not hold yet, and why.

`quarantinedPushes`/`quarantinedUnits` are usage Stripe refused for good (a value it
cannot hold, say): the writer will not send it again by itself, so it is never billed
unless someone acts; the meter_pushes rows keep Stripe's reason.

The answer comes from Postgres (buckets vs `push_state`, `worker_state`), so it is the
same whichever process runs the writer. The demo polls it until `pendingBuckets` is 0.
`install(app)` adds the writer's readiness check and the scrape-time gauges.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, FastAPI

from stripemeter.api.deps import Pool, ReadPrincipal, TenantIdQuery
from stripemeter.api.schemas import AUTH_ERRORS, INVALID_QUERY, WriterStatus, error_responses
from stripemeter.jsonio import JsonResponse, format_decimal, iso
from stripemeter.ops.gauges import use_pool_for_metrics
from stripemeter.workers import state as worker_state
from stripemeter.writer.outbox import quarantined_summary
from stripemeter.writer.pending import PENDING_SQL
from stripemeter.writer.status import writer_health, writer_health_detail

router = APIRouter(tags=["writer"])


def pending(conn: Any, tenant_id: str) -> tuple[int, Decimal]:
    """(buckets Stripe does not hold yet, their units) for one tenant."""
    row = conn.execute(PENDING_SQL, {"t": tenant_id}).fetchone()
    if row is None:
        return 0, Decimal(0)
    return int(row[1]), Decimal(row[2])


@router.get(
    "/v1/writer/status",
    response_model=WriterStatus,
    responses=error_responses({400: INVALID_QUERY, **AUTH_ERRORS}),
)
def writer_status(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
) -> JsonResponse:
    """Pending and quarantined usage, and the writer's last push and error, for the tenant."""
    tenant = principal.tenant_or(tenant_id)
    with pool.connection() as conn:
        buckets, units = pending(conn, tenant)
        quarantined, quarantined_units = quarantined_summary(conn, tenant)
        state = worker_state.read_state(conn, "writer", tenant)
    return JsonResponse(
        {
            "tenantId": str(tenant),
            "pendingBuckets": buckets,
            "pendingUnits": format_decimal(units),
            "quarantinedPushes": quarantined,
            "quarantinedUnits": format_decimal(quarantined_units),
            "lastPushAt": iso(state.last_push_at) if state and state.last_push_at else None,
            "lastError": state.last_error if state else None,
            "consecutiveFailures": state.consecutive_failures if state else 0,
        }
    )


def install(app: FastAPI) -> None:
    """Add the writer's readiness check (and its tenant detail for admins), and point
    the metrics gauges at the app's pool."""

    def stripe_writer() -> tuple[str, str, str]:
        return writer_health(app.state.pool)

    def stripe_writer_detail(tenant_id: str | None) -> tuple[str, dict[str, Any]]:
        return writer_health_detail(app.state.pool, tenant_id)

    app.state.extra_health_checks.append(stripe_writer)
    if not hasattr(app.state, "health_details"):
        app.state.health_details = []
    app.state.health_details.append(stripe_writer_detail)
    use_pool_for_metrics(lambda: getattr(app.state, "pool", None))
