"""`POST /v1/stripe/webhooks` (Stripe calls it) and `GET /v1/stripe/meter_errors`.

The webhook route authenticates by signature, not by API key: the raw body is verified
against `Stripe-Signature` with `STRIPE_WEBHOOK_SECRET` (`stripemeter.stripe.webhooks`),
then recorded with its work item in one transaction (`stripemeter.webhooks.receive`), and
the answer is 200 at once: the workers do the work when PostgreSQL notifies them. A
replayed event id answers 200 with `duplicate: true` and does nothing. Without a secret
the route answers 404 `webhooks_not_configured` (not a 5xx: nothing is down; the polling
loops do everything); a bad signature 400 `signature_verification_failed` with the SDK's
message.

`GET /v1/stripe/meter_errors` (admin) lists what `billing.meter.error_report_triggered`
reported for the tenant's meters (those its mappings resolved to or its pushes went to):
all tenants share one Stripe account, so the errors of another tenant's meter, which may
name its customers, are not shown.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from stripemeter.api.deps import AdminPrincipal, AppSettings, Pool, TenantIdQuery
from stripemeter.api.errors import ApiError
from stripemeter.api.schemas import AUTH_ERRORS, INVALID_QUERY, Instant, WireModel, error_responses
from stripemeter.jsonio import JsonResponse, iso
from stripemeter.stripe.webhooks import verify_event
from stripemeter.webhooks.receive import meter_error_reports, record

router = APIRouter(tags=["stripe"])


class WebhookAck(WireModel):
    """`POST /v1/stripe/webhooks`: the event is recorded (or was already)."""

    received: Literal[True]
    eventId: str
    type: str
    action: Literal["flush", "reconcile", "meter_errors", "none"] = Field(
        description="what the workers do: flush (writer pass for the invoice's customer), "
        "reconcile (the tenant), meter_errors (stored), none (ignored, see `note`)"
    )
    status: Literal["pending", "done", "failed", "ignored"]
    duplicate: bool = Field(description="true when this event id was received before")
    note: str | None


class MeterErrorReport(WireModel):
    """One error code of a meter error report Stripe sent."""

    eventId: str
    meterId: str | None
    errorCode: str
    errorCount: int = Field(ge=0)
    sampleMessage: str | None
    validationStart: Instant | None
    validationEnd: Instant | None
    receivedAt: Instant


class MeterErrorPage(WireModel):
    """`GET /v1/stripe/meter_errors`: the latest errors of the tenant's meters, newest first."""

    tenantId: str
    errors: list[MeterErrorReport]


@router.post(
    "/v1/stripe/webhooks",
    response_model=WebhookAck,
    responses=error_responses(
        {
            400: "signature_verification_failed (Stripe-Signature missing, stale or wrong), "
            "invalid_event (a signed body that is not a Stripe event)",
            404: "webhooks_not_configured: STRIPE_WEBHOOK_SECRET is not set",
        }
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def receive_webhook(request: Request, pool: Pool, settings: AppSettings) -> JsonResponse:
    """A Stripe event, verified by its signature and recorded once per event id."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if secret is None:
        raise ApiError(
            404,
            "webhooks_not_configured",
            "webhooks are not configured: set STRIPE_WEBHOOK_SECRET (`stripemeter webhooks "
            "setup --url URL` prints it); until then the service polls Stripe",
        )
    payload = await request.body()
    event = verify_event(
        payload,
        request.headers.get("stripe-signature"),
        secret,
        tolerance_s=settings.STRIPE_WEBHOOK_TOLERANCE_S,
    )

    def store() -> JsonResponse:
        with pool.connection() as conn:
            done = record(conn, event)
        return JsonResponse(
            {
                "received": True,
                "eventId": done.event_id,
                "type": done.type,
                "action": done.action,
                "status": done.status,
                "duplicate": done.duplicate,
                "note": done.note,
            }
        )

    return await run_in_threadpool(store)


@router.get(
    "/v1/stripe/meter_errors",
    response_model=MeterErrorPage,
    responses=error_responses({400: INVALID_QUERY, **AUTH_ERRORS}),
)
def list_meter_errors(
    principal: AdminPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> JsonResponse:
    """The errors Stripe reported for the tenant's meters (meter error reports)."""
    tenant = principal.tenant_or(tenant_id)
    with pool.connection() as conn:
        rows = meter_error_reports(conn, tenant, limit)
    for row in rows:
        for key in ("validationStart", "validationEnd", "receivedAt"):
            row[key] = iso(row[key]) if row[key] is not None else None
    return JsonResponse({"tenantId": str(tenant), "errors": rows})
