"""Reconciliation API: run it, list its reports, summarize drift (JSON or CSV).

- `POST /v1/reconciliation/run {"tenantId"}`: 202 and the run happens in the
  background; with `?wait=true`, 200 with the reports made. Stripe unreadable: 503
  `stripe_unavailable` with the reason.
- `GET /v1/reconciliation/summary?tenantId&periodStart=YYYY-MM&periodEnd=YYYY-MM`
  (periods starting in those months) or `?tenantId&from&to` (periods overlapping
  `[from, to)`); `format=csv` gives one line per metric and a TOTAL line.
- `GET /v1/reconciliation/{YYYY-MM}?tenantId`: the latest report of every item whose
  period starts in that month.

No report is ever made up: with no reports the summary answers 404 (or 503 with the
reconciler's last error), never an empty zero-drift answer; the database down is 503.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter import worker_state
from stripemeter.api.deps import AdminPrincipal, AppSettings, Pool, ReadPrincipal
from stripemeter.api.errors import ApiError
from stripemeter.config import Settings
from stripemeter.db.pool import Pool as PoolType
from stripemeter.jsonio import JsonResponse, iso
from stripemeter.periods import parse_month
from stripemeter.reconciler import ReconciliationError, reconcile
from stripemeter.reconciliation_summary import latest_reports, report_json, summarize, to_csv
from stripemeter.stripe import StripeConfigError, client_for_settings
from stripemeter.stripe_gateway import RetryPolicy, StripeGateway

router = APIRouter(tags=["reconciliation"])
log = logging.getLogger("stripemeter.api.reconciliation")


class RunRequest(BaseModel):
    """Body of `POST /v1/reconciliation/run`."""

    model_config = ConfigDict(extra="forbid")
    tenantId: UUID = Field(description="the tenant whose mappings to reconcile")


def stripe_gateway(request: Request, settings: Settings) -> StripeGateway:
    """The app's gateway to Stripe, built once from settings."""
    gateway: StripeGateway | None = getattr(request.app.state, "stripe_gateway", None)
    if gateway is None:
        try:
            client = client_for_settings(settings)
        except StripeConfigError as exc:
            raise ApiError(503, "stripe_not_configured", str(exc)) from exc
        gateway = StripeGateway(
            client,
            account=settings.STRIPE_ACCOUNT,
            max_concurrency=settings.STRIPE_MAX_CONCURRENCY,
            retry=RetryPolicy(attempts=4),
        )
        request.app.state.stripe_gateway = gateway
    return gateway


def _run_in_background(
    pool: PoolType, gateway: StripeGateway, settings: Settings, tenant: UUID
) -> None:
    try:
        reconcile(pool, gateway, settings, tenant)
    except ReconciliationError as exc:  # recorded in worker_state by reconcile()
        log.warning("background reconciliation failed: %s", exc)
    except Exception:
        log.exception("background reconciliation failed")


@router.post("/v1/reconciliation/run", response_class=JsonResponse)
def run_reconciliation(
    body: RunRequest,
    request: Request,
    principal: AdminPrincipal,
    pool: Pool,
    settings: AppSettings,
    background: BackgroundTasks,
    wait: bool = False,
) -> JsonResponse:
    """Reconcile the tenant now: 202 (background) or, with `?wait=true`, 200 + reports."""
    principal.require_tenant(body.tenantId)
    gateway = stripe_gateway(request, settings)
    if not wait:
        background.add_task(_run_in_background, pool, gateway, settings, body.tenantId)
        return JsonResponse({"tenantId": str(body.tenantId), "status": "accepted"}, status_code=202)
    try:
        reports = reconcile(pool, gateway, settings, body.tenantId)
    except ReconciliationError as exc:
        raise ApiError(503, "stripe_unavailable", str(exc)) from exc
    return JsonResponse(
        {
            "tenantId": str(body.tenantId),
            "status": "done",
            "reports": [report_json(r) for r in reports],
        }
    )


def _window(
    period_start: str | None,
    period_end: str | None,
    from_: datetime | None,
    to: datetime | None,
) -> tuple[datetime, datetime, bool, str, str]:
    """(start, end, overlap?, echo start, echo end) from either query form."""
    if period_start is not None or period_end is not None:
        if from_ is not None or to is not None:
            raise ApiError(
                400, "conflicting_window", "give either periodStart/periodEnd or from/to", "from"
            )
        if period_start is None or period_end is None:
            missing = "periodStart" if period_start is None else "periodEnd"
            raise ApiError(400, "missing_field", f"{missing} is required (YYYY-MM)", missing)
        try:
            start, _ = parse_month(period_start, "periodStart")
            _, end = parse_month(period_end, "periodEnd")
        except ValueError as exc:
            field = "periodStart" if "periodStart" in str(exc) else "periodEnd"
            raise ApiError(400, "invalid_month", str(exc), field) from exc
        if end <= start:
            raise ApiError(
                400, "invalid_window", "periodEnd must not be before periodStart", "periodEnd"
            )
        return start, end, False, period_start, period_end
    if from_ is None or to is None:
        missing = "from" if from_ is None else "to"
        raise ApiError(
            400,
            "missing_field",
            f"{missing} is required (or give periodStart and periodEnd as YYYY-MM)",
            missing,
        )
    if to <= from_:
        raise ApiError(400, "invalid_window", "to must be later than from", "to")
    return from_, to, True, iso(from_), iso(to)


@router.get("/v1/reconciliation/summary", response_model=None)
def reconciliation_summary(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: Annotated[UUID | None, Query(alias="tenantId")] = None,
    period_start: Annotated[str | None, Query(alias="periodStart")] = None,
    period_end: Annotated[str | None, Query(alias="periodEnd")] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: Annotated[AwareDatetime | None, Query()] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Drift per metric and overall for the tenant's periods in the window."""
    tenant = principal.tenant_or(tenant_id)
    start, end, overlap, echo_start, echo_end = _window(period_start, period_end, from_, to)
    with pool.connection() as conn:
        reports = latest_reports(conn, tenant, start, end, overlap=overlap)
        state = worker_state.read_state(conn, "reconciler", tenant)
    if not reports:
        if state is not None and state.last_error:
            raise ApiError(
                503,
                "reconciliation_failed",
                f"no reconciliation reports for this window; the last reconciliation "
                f"failed: {state.last_error}",
            )
        raise ApiError(
            404,
            "no_reports",
            f"no reconciliation reports for tenant {tenant} with periods in "
            f"{echo_start}..{echo_end}; run POST /v1/reconciliation/run first",
        )
    summary: dict[str, Any] = {
        "tenantId": str(tenant),
        "periodStart": echo_start,
        "periodEnd": echo_end,
        **summarize(reports),
        "reconciledAt": iso(max(r["created_at"] for r in reports)),
        "lastError": state.last_error if state else None,
    }
    if format == "csv":
        return Response(to_csv(summary), media_type="text/csv; charset=utf-8")
    return JsonResponse(summary)


@router.get("/v1/reconciliation/{month}", response_class=JsonResponse)
def reconciliation_month(
    month: str,
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: Annotated[UUID | None, Query(alias="tenantId")] = None,
) -> JsonResponse:
    """The latest report of every item whose period starts in the month."""
    tenant = principal.tenant_or(tenant_id)
    try:
        start, end = parse_month(month, "month")
    except ValueError as exc:
        raise ApiError(400, "invalid_month", str(exc), "month") from exc
    with pool.connection() as conn:
        reports = latest_reports(conn, tenant, start, end, overlap=False)
    return JsonResponse(
        {"tenantId": str(tenant), "month": month, "reports": [report_json(r) for r in reports]}
    )
