"""Reconciliation API: run it in the background, follow a run, list reports, summarize.

- `POST /v1/reconciliation/run {"tenantId"}`: queue a background run for the tenant
  and answer 202 with its `runId`. One run per tenant is queued or running at a time:
  asking again while it is returns the same run id (duplicates coalesce). Runs are
  executed by `RECONCILIATION_THREADS` threads on their own connection pool, never one
  thread per request (see `stripemeter.reconciler.runs`). With `?wait=true` the
  request waits at most `RECONCILIATION_WAIT_S` seconds: 200 with the reports when the
  run finishes in time, 422 `stripe_refused` when Stripe refused a request (a mapping
  naming a price Stripe does not have), 503 `stripe_unavailable` (or
  `database_unavailable`) when it could not be read, else 202 with the run id to poll.
- `GET /v1/reconciliation/runs/{runId}`: a run's status, timings, outcome and reports.
- `GET /v1/reconciliation/summary?tenantId&periodStart=YYYY-MM&periodEnd=YYYY-MM`
  (periods starting in those months) or `?tenantId&from&to` (periods overlapping
  `[from, to)`); `format=csv` gives one line per metric and a TOTAL line. Windows must
  lie within 1970-01-01T00:00:00Z..9999-01-01T00:00:00Z (400 `out_of_range` naming
  the parameter otherwise).
- `GET /v1/reconciliation/{YYYY-MM}?tenantId`: the latest report of every item whose
  period starts in that month.

No report is ever made up: with no reports the summary answers 404 (or 503 with the
reconciler's last error), never an empty zero-drift answer; the database down is 503.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio
import anyio.to_thread
from fastapi import APIRouter, FastAPI, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.responses import Response

from stripemeter.api.deps import (
    AdminPrincipal,
    AppSettings,
    AuthFirstRoute,
    Pool,
    ReadPrincipal,
    TenantIdBody,
    TenantIdQuery,
)
from stripemeter.api.errors import ApiError
from stripemeter.api.schemas import (
    AUTH_ERRORS,
    INVALID_QUERY,
    MonthReports,
    QueuedRun,
    RunWithReports,
    Summary,
    error_responses,
)
from stripemeter.config import Settings
from stripemeter.db.pool import Pool as PoolType
from stripemeter.errors import StripeConfigError
from stripemeter.jsonio import JsonResponse, iso
from stripemeter.periods import parse_month
from stripemeter.reconciler.reports import latest_reports, report_json, summarize, to_csv
from stripemeter.reconciler.runs import Run, RunExecutor, get_run
from stripemeter.stripe.client import gateway_from_settings
from stripemeter.stripe.gateway import RetryPolicy
from stripemeter.workers import state as worker_state

router = APIRouter(tags=["reconciliation"], route_class=AuthFirstRoute)
log = logging.getLogger("stripemeter.api.reconciliation")

# The instants a summary window may name. Checked before any arithmetic: converting
# 9999-12-31T23:00:00-05:00 or 0001-01-01T00:00:00+01:00 to UTC overflows.
MIN_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)
_RANGE_TEXT = "1970-01-01T00:00:00Z..9999-01-01T00:00:00Z"


class RunRequest(BaseModel):
    """Body of `POST /v1/reconciliation/run`."""

    model_config = ConfigDict(extra="forbid")
    tenantId: TenantIdBody = Field(description="the tenant whose mappings to reconcile")


def run_executor(request: Request, settings: Settings) -> RunExecutor:
    """The app's background-run executor, started on first use.

    It runs on `app.state.background_pool` (opened by the app next to the request
    pool) with its own Stripe gateway, whose retry backoff ends when the app stops.
    """
    app = request.app
    executor: RunExecutor | None = getattr(app.state, "reconciliation_executor", None)
    if executor is None:
        stop = threading.Event()
        try:
            gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=4), stop=stop)
        except StripeConfigError as exc:
            raise ApiError(503, "stripe_not_configured", str(exc)) from exc
        executor = RunExecutor(
            app.state.background_pool,
            gateway,
            settings,
            threads=settings.RECONCILIATION_THREADS,
            stop=stop,
        )
        app.state.reconciliation_executor = executor
    return executor


def shutdown(app: FastAPI) -> None:
    """Stop the app's run executor, if it was started (before its pool closes)."""
    executor: RunExecutor | None = getattr(app.state, "reconciliation_executor", None)
    if executor is not None:
        executor.stop()
        app.state.reconciliation_executor = None


def _read_run(pool: PoolType, run_id: UUID) -> Run | None:
    with pool.connection() as conn:
        return get_run(conn, run_id)


async def _await_run(executor: RunExecutor, pool: PoolType, run: Run, bound_s: float) -> Run:
    """The run once finished, or as it stands after `bound_s` seconds, whichever first.

    Waiting is `await`ed on the event loop, so a waiting request holds no worker thread
    and no connection; a run of this process is watched in memory, another process's
    (a coalesced request) by reading its row twice a second.
    """
    deadline = time.monotonic() + bound_s
    current = run
    while True:
        remaining = deadline - time.monotonic()
        if not executor.pending_here(run.id):
            found = await anyio.to_thread.run_sync(_read_run, pool, run.id)
            current = found or current
            if current.finished or remaining <= 0:
                return current
            await anyio.sleep(min(0.5, remaining))
        elif remaining <= 0:
            found = await anyio.to_thread.run_sync(_read_run, pool, run.id)
            return found or current
        else:
            await anyio.sleep(min(0.05, remaining))


def _run_json(run: Run, *, reports: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runId": str(run.id),
        "tenantId": str(run.tenant_id),
        "status": run.status,
        "statusUrl": f"/v1/reconciliation/runs/{run.id}",
        "requestedAt": iso(run.requested_at),
        "startedAt": None if run.started_at is None else iso(run.started_at),
        "finishedAt": None if run.finished_at is None else iso(run.finished_at),
        "reportCount": run.report_count,
        "error": None if run.error_code is None else {"code": run.error_code, "message": run.error},
    }
    if reports:
        body["reports"] = run.reports
    return body


@router.post(
    "/v1/reconciliation/run",
    response_model=QueuedRun,
    status_code=202,
    responses={
        200: {
            "model": RunWithReports,
            "description": "`?wait=true` and the run finished: its reports",
        },
        202: {"description": "the run is queued or running (`runId`, `statusUrl`)"},
        **error_responses(
            {
                400: "invalid_request, invalid_json",
                **AUTH_ERRORS,
                422: "`?wait=true` and Stripe refused a request: stripe_refused (`runId`)",
                503: "stripe_not_configured; with `?wait=true`, stripe_unavailable or "
                "database_unavailable: the run could not read Stripe or the database (`runId`)",
            }
        ),
    },
)
async def run_reconciliation(
    body: RunRequest,
    request: Request,
    principal: AdminPrincipal,
    pool: Pool,
    settings: AppSettings,
    wait: Annotated[
        bool,
        Query(
            description="wait for the run, at most RECONCILIATION_WAIT_S seconds "
            "(default 25); past that the answer is 202 with the run id"
        ),
    ] = False,
) -> JsonResponse:
    """Queue a background reconciliation of the tenant (admin scope); 202 with its `runId`.

    One run per tenant is queued or running at a time: a request while one is returns
    that run's id (`coalesced: true`), so flooding this endpoint costs one run. Runs
    are executed by a fixed number of threads (`RECONCILIATION_THREADS`) on their own
    connection pool, so they never take the connections ingest and reads use; every
    Stripe call they make times out after `STRIPE_TIMEOUT_S`.

    With `?wait=true` the request waits at most `RECONCILIATION_WAIT_S` seconds: 200
    with `reports` when the run finished, 422 `stripe_refused` when Stripe refused a
    request (the mapping is wrong, Stripe is up), 503 (`stripe_unavailable`,
    `database_unavailable`) when it could not be read, else 202 with the run id;
    follow it with `GET /v1/reconciliation/runs/{runId}`.
    """
    principal.require_tenant(body.tenantId)
    executor = run_executor(request, settings)

    def submit() -> tuple[Run, bool]:
        with pool.connection() as conn:
            return executor.submit(conn, body.tenantId)

    run, created = await anyio.to_thread.run_sync(submit)
    if wait:
        run = await _await_run(executor, pool, run, settings.RECONCILIATION_WAIT_S)
        if run.status == "done":
            return JsonResponse(_run_json(run, reports=True), status_code=200)
        if run.status == "failed":
            raise ApiError(
                422 if run.error_code == "stripe_refused" else 503,
                run.error_code or "reconciliation_failed",
                run.error or "the reconciliation run failed",
                extra={"runId": str(run.id)},
            )
    return JsonResponse(
        {**_run_json(run, reports=False), "coalesced": not created}, status_code=202
    )


@router.get(
    "/v1/reconciliation/runs/{runId}",
    response_model=RunWithReports,
    responses=error_responses(
        {
            400: INVALID_QUERY,
            **AUTH_ERRORS,
            404: "run_not_found: no such run, or another tenant's",
        }
    ),
)
def reconciliation_run(
    run_id: Annotated[UUID, Path(alias="runId", description="the id `POST .../run` gave")],
    principal: ReadPrincipal,
    pool: Pool,
) -> JsonResponse:
    """A reconciliation run: `status` (queued, running, done, failed), timings,
    `reportCount`, `error` {code, message} when it failed, and `reports` when done.

    A run of another tenant answers 404, like a run that does not exist.
    """
    run = _read_run(pool, run_id)
    if run is None or (principal.tenant_id is not None and run.tenant_id != principal.tenant_id):
        raise ApiError(404, "run_not_found", f"no reconciliation run {run_id}", "runId")
    return JsonResponse(_run_json(run, reports=True))


def _bounded(value: datetime, field: str) -> datetime:
    """`value` in UTC, refused (400 naming `field`) outside MIN_INSTANT..MAX_INSTANT.

    The year is checked on the local (naive) value first: any offset is under a day,
    so a year within 1970..9998 converts to UTC without overflowing.
    """
    refuse = ApiError(
        400,
        "out_of_range",
        f"{field} must be an instant within {_RANGE_TEXT} (got {value.isoformat()})",
        field,
    )
    if not MIN_INSTANT.year <= value.replace(tzinfo=None).year < MAX_INSTANT.year:
        raise refuse
    utc = value.astimezone(UTC)
    if not MIN_INSTANT <= utc <= MAX_INSTANT:
        raise refuse
    return utc


def _month(text: str, field: str) -> tuple[datetime, datetime]:
    """A `YYYY-MM` query value as its [start, end), both within the allowed range."""
    try:
        start, end = parse_month(text, field)
    except ValueError as exc:
        raise ApiError(
            400,
            "invalid_month",
            f"{field} must be a month as YYYY-MM within 1970-01..9998-12 ({exc})",
            field,
        ) from exc
    if start < MIN_INSTANT or end > MAX_INSTANT:
        raise ApiError(
            400,
            "out_of_range",
            f"{field} must be a month within 1970-01..9998-12 (got {text!r})",
            field,
        )
    return start, end


def _run_underway(conn: Any, tenant: str) -> str | None:
    """The id of the tenant's queued or running reconciliation run, if any (for the
    summary's hint when it has no report yet)."""
    row = conn.execute(
        "SELECT id FROM reconciliation_runs WHERE tenant_id::text = %s"
        " AND status IN ('queued', 'running')",
        (str(tenant),),
    ).fetchone()
    return str(row[0]) if row else None


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
        start, _ = _month(period_start, "periodStart")
        _, end = _month(period_end, "periodEnd")
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
    start, end = _bounded(from_, "from"), _bounded(to, "to")
    if end <= start:
        raise ApiError(400, "invalid_window", "to must be later than from", "to")
    return start, end, True, iso(start), iso(end)


@router.get(
    "/v1/reconciliation/summary",
    response_model=Summary,
    responses={
        200: {
            "description": "the summary; with `format=csv`, one line per metric and a TOTAL line",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **error_responses(
            {
                400: f"{INVALID_QUERY}; invalid_month, out_of_range, conflicting_window, "
                "invalid_window",
                **AUTH_ERRORS,
                404: "no_reports: no reconciliation report in the window; run one first",
                503: "reconciliation_failed: no report, and the last reconciliation failed",
            }
        ),
    },
)
def reconciliation_summary(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
    period_start: Annotated[str | None, Query(alias="periodStart")] = None,
    period_end: Annotated[str | None, Query(alias="periodEnd")] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: Annotated[AwareDatetime | None, Query()] = None,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Response:
    """Drift per metric and overall for the tenant's periods in the window.

    The window is `periodStart`/`periodEnd` (YYYY-MM, periods starting in those months)
    or `from`/`to` (ISO-8601 with an offset, periods overlapping `[from, to)`), within
    1970-01-01T00:00:00Z..9999-01-01T00:00:00Z: 400 `out_of_range` naming the
    parameter otherwise.
    """
    tenant = principal.tenant_or(tenant_id)
    start, end, overlap, echo_start, echo_end = _window(period_start, period_end, from_, to)
    with pool.connection() as conn:
        reports = latest_reports(conn, tenant, start, end, overlap=overlap)
        state = worker_state.read_state(conn, "reconciler", tenant)
        underway = None if reports else _run_underway(conn, tenant)
    if not reports:
        if state is not None and state.last_error:
            raise ApiError(
                503,
                "reconciliation_failed",
                f"no reconciliation reports for this window; the last reconciliation "
                f"failed: {state.last_error}",
            )
        window = (
            f"no reconciliation reports for tenant {tenant} with periods in "
            f"{echo_start}..{echo_end}"
        )
        if underway is not None:
            raise ApiError(
                404,
                "no_reports",
                f"{window}: reconciliation run {underway} is still under way; poll "
                f"GET /v1/reconciliation/runs/{underway} and ask again when it is done",
            )
        if state is not None and state.last_success_at is not None:
            # It ran and succeeded: running it again would find the same nothing.
            raise ApiError(
                404,
                "no_reports",
                f"{window}: the last reconciliation ({iso(state.last_success_at)}) found no "
                "billing period of an active mapping there; check the window and the "
                "tenant's mappings (GET /v1/mappings)",
            )
        raise ApiError(
            404,
            "no_reports",
            f"{window}: reconciliation has not run for this tenant yet; run "
            "POST /v1/reconciliation/run first",
        )
    summary: dict[str, Any] = {
        "tenantId": str(tenant),
        "periodStart": echo_start,
        "periodEnd": echo_end,
        **summarize(reports),
        "reconciledAt": iso(max(r["checked_at"] for r in reports)),
        "lastError": state.last_error if state else None,
    }
    if format == "csv":
        return Response(to_csv(summary), media_type="text/csv; charset=utf-8")
    return JsonResponse(summary)


@router.get(
    "/v1/reconciliation/{month}",
    response_model=MonthReports,
    responses=error_responses({400: f"{INVALID_QUERY}; invalid_month", **AUTH_ERRORS}),
)
def reconciliation_month(
    month: str,
    principal: ReadPrincipal,
    pool: Pool,
    settings: AppSettings,
    tenant_id: TenantIdQuery = None,
) -> JsonResponse:
    """The latest report of every item whose period starts in the month."""
    tenant = principal.tenant_or(tenant_id)
    try:
        start, end = parse_month(month, "month")
    except ValueError as exc:
        raise ApiError(400, "invalid_month", str(exc), "month") from exc
    with pool.connection() as conn:
        reports = latest_reports(conn, tenant, start, end, overlap=False)
    epsilon = settings.RECONCILIATION_EPSILON
    return JsonResponse(
        {
            "tenantId": str(tenant),
            "month": month,
            "reports": [report_json(r, epsilon) for r in reports],
        }
    )
