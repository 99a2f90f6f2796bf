"""The bodies the API answers with, as pydantic models: what `/openapi.json` documents.

Routes build their answers as plain dicts (`mappings.store.to_json`,
`reconciler.reports.report_json`, ...) and return them pre-serialized, so FastAPI
neither validates nor re-renders them; these models are the documentation of those
dicts, attached with `response_model=` and `responses=`. The test
`tests/stripemeter/api/test_openapi_responses.py` sends real requests to every route
and validates each answer against the served document, so a body that drifts from its
model fails there. Fields are named as on the wire (camelCase, and the two snake_case
drift figures of reports), and every model refuses unknown fields
(`additionalProperties: false`): a field a route adds must be documented here first.

Decimals that must not be rounded travel as strings (`DecimalText`); instants are
ISO-8601 in UTC.

`error_responses` is the one description of the error answers: every failure, of any
route, is `ErrorBody` (`{"error": {"code", "message", "field"}}`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from stripemeter.aggregations import AggregationName
from stripemeter.auth import Scope
from stripemeter.ingest.ledger import Status as EventStatus
from stripemeter.reconciler.runs import RunStatus

DECIMAL_PATTERN = r"^-?[0-9]+(\.[0-9]+)?$"
DecimalText = Annotated[
    str,
    Field(
        pattern=DECIMAL_PATTERN,
        description="an exact decimal as text, no exponent, no trailing zeros",
        examples=["425", "0.5"],
    ),
]
# Summary figures: a JSON number when that is exact, else the decimal as text.
ExactNumber = Annotated[
    float | DecimalText,
    Field(description="a JSON number when exact, else an exact decimal as text"),
]
Instant = Annotated[datetime, Field(description="ISO-8601 in UTC, e.g. 2026-11-20T10:15:00Z")]


class WireModel(BaseModel):
    """A body as sent: exactly these fields, no others."""

    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------


class ErrorDetail(WireModel):
    """What went wrong: a stable `code`, a message for people, the field at fault."""

    code: str = Field(description="stable machine-readable code, e.g. invalid_value")
    message: str = Field(description="what is wrong and how to fix it")
    field: str | None = Field(description="the field, parameter or header at fault, if one is")


class IndexedError(WireModel):
    """The error of one event of an ingest batch, by its index in `events`."""

    index: int = Field(ge=0)
    error: ErrorDetail


class ErrorBody(WireModel):
    """Every failure answer. Some codes add a field next to `error`."""

    error: ErrorDetail
    requiredScope: Scope | SkipJsonSchema[None] = Field(
        default=None, description="403 forbidden_scope: the scope the request needs"
    )
    errors: list[IndexedError] | SkipJsonSchema[None] = Field(
        default=None, description="400 for an ingest batch with no valid event: each event's error"
    )
    runId: UUID | SkipJsonSchema[None] = Field(
        default=None, description="a failed reconciliation run waited for: its id"
    )


def error_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: its own error statuses (`{status: which codes}`), and the
    ranges every route shares (413, 415, 500, database_unavailable...), all `ErrorBody`."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": text} for status, text in described.items()
    }
    responses["4XX"] = {"model": ErrorBody, "description": "any other client error"}
    responses["5XX"] = {
        "model": ErrorBody,
        "description": "internal_error, or 503 database_unavailable: retry later",
    }
    return responses


AUTH_ERRORS = {
    401: "unauthorized: no key, a malformed Authorization header, or an unknown or revoked key",
    403: "forbidden_scope (the key lacks the scope; `requiredScope` names it) or "
    "forbidden_tenant (another tenant's data)",
}
INVALID_QUERY = "invalid_request: a parameter is malformed (`field` names it); missing_field"


# --- events and usage -----------------------------------------------------------------


class EventResult(WireModel):
    """The fate of one event of an ingest batch, in the batch's order."""

    idempotencyKey: str | None = Field(
        description="the key the event is stored under (yours or a derived `~` key); "
        "null for an invalid event"
    )
    status: EventStatus
    error: ErrorDetail | SkipJsonSchema[None] = Field(
        default=None, description="present when status is error"
    )


class IngestAnswer(WireModel):
    """`POST /v1/events/ingest`: counts, and each event's fate."""

    accepted: int = Field(ge=0, description="events stored by this request")
    duplicates: int = Field(ge=0, description="events already stored (sent before)")
    requestId: str
    results: list[EventResult]
    errors: list[IndexedError] = Field(description="the invalid events, by index")


class StoredEvent(WireModel):
    """One event of the ledger."""

    seq: int = Field(description="arrival order")
    tenantId: str
    idempotencyKey: str
    metric: str
    customerRef: str
    resourceId: str | None
    quantity: DecimalText
    ts: Instant
    source: str | None
    meta: dict[str, Any] | None
    requestId: str | None
    receivedAt: Instant


class EventPage(WireModel):
    """`GET /v1/events`: a page of events, newest first."""

    events: list[StoredEvent]
    nextCursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class UsageAnswer(WireModel):
    """`GET /v1/usage`: totals over whole hours of `[from, to)`, and the query echoed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    total: DecimalText
    max: DecimalText | None = Field(description="null when there was no usage")
    last: DecimalText | None = Field(description="the latest value; null when there was no usage")
    events: int = Field(ge=0)
    tenantId: str
    metric: str
    customerRef: str | None
    from_: Instant = Field(alias="from")
    to: Instant


class PeriodOut(WireModel):
    """A Stripe billing period `[start, end)`."""

    start: Instant
    end: Instant


class CurrentMetric(WireModel):
    """One active mapping's usage in the customer's current Stripe period."""

    name: str = Field(description="the metric")
    aggregation: AggregationName
    current: DecimalText = Field(description="the local aggregate over the period so far")
    period: PeriodOut
    subscriptionItemId: str


class CurrentUsage(WireModel):
    """`GET /v1/usage/current`: usage per metric in the customer's current Stripe period."""

    tenantId: str
    customerRef: str
    stripeCustomerId: str
    metrics: list[CurrentMetric]


class ProjectedMetric(WireModel):
    """One metric's end-of-period estimate."""

    name: str
    aggregation: AggregationName
    current: DecimalText
    projected: DecimalText
    method: Literal["linear", "current"] = Field(
        description="linear: current x period length / elapsed (sum, count); current: a "
        "max or last value is projected as it stands"
    )
    period: PeriodOut
    elapsedFraction: DecimalText = Field(description="share of the period elapsed, 0..1")


class Projection(WireModel):
    """`POST /v1/usage/projection`: end-of-period estimates, with the method stated."""

    tenantId: str
    customerRef: str
    method: Literal["linear"]
    asOf: Instant = Field(description="the instant projected from (a test clock's time)")
    metrics: list[ProjectedMetric]


# --- mappings and bindings ------------------------------------------------------------


class Mapping(WireModel):
    """A price mapping: which Stripe price (and meter) a tenant's metric bills through."""

    id: UUID
    tenantId: str
    metric: str
    aggregation: AggregationName
    stripeAccount: str
    priceId: str
    subscriptionItemId: str | None
    currency: str | None
    active: bool
    meterId: str | None
    meterEventName: str | None
    meterCustomerKey: str | None
    meterValueKey: str | None
    createdAt: Instant
    updatedAt: Instant


class MappingList(WireModel):
    """`GET /v1/mappings`: the tenant's mappings, active first."""

    mappings: list[Mapping]


class MappingDeleted(WireModel):
    """`DELETE /v1/mappings/{mapping_id}`."""

    deleted: UUID = Field(description="the id of the deleted mapping")


class Binding(WireModel):
    """Which Stripe customer a tenant's customerRef is billed as."""

    tenantId: str
    customerRef: str
    stripeCustomerId: str
    createdAt: Instant
    verifiedAt: Instant | None = Field(description="when Stripe confirmed the customer")


class BindingList(WireModel):
    """`GET /v1/customers/bindings`: the tenant's bindings, by customerRef."""

    tenantId: str
    bindings: list[Binding]


class BindingDeleted(WireModel):
    """`DELETE /v1/customers/{customerRef}/binding`."""

    tenantId: str
    customerRef: str
    deleted: Literal[True]


# --- writer, reconciliation -----------------------------------------------------------


class WriterStatus(WireModel):
    """`GET /v1/writer/status`: usage Stripe does not hold yet, and the writer's last error."""

    tenantId: str
    pendingBuckets: int = Field(ge=0)
    pendingUnits: DecimalText
    quarantinedPushes: int = Field(
        ge=0, description="pushes Stripe refused for good; never billed unless someone acts"
    )
    quarantinedUnits: DecimalText
    lastPushAt: Instant | None
    lastError: str | None
    consecutiveFailures: int = Field(ge=0)


class Report(WireModel):
    """A reconciliation report of one (mapping, customer, period)."""

    id: UUID
    tenantId: str
    mappingId: UUID | None = Field(description="null once the mapping was deleted")
    metric: str
    customerRef: str
    subscriptionItemId: str
    periodStart: Instant
    periodEnd: Instant
    local: DecimalText
    stripe: DecimalText = Field(description="Stripe's meter summary")
    invoiceId: str | None
    invoiceQuantity: DecimalText | None
    compared: DecimalText = Field(
        description="the Stripe figure local is compared with: when final, invoiceQuantity "
        "plus the applied corrections, else stripe"
    )
    drift_abs: DecimalText
    drift_pct: DecimalText
    status: Literal["ok", "investigate", "resolved", "post_close"]
    tolerance: Literal["within tolerance"] | None = Field(
        description="set when the period is at parity (ok, resolved) although drift_abs is "
        "not 0: drift_pct <= RECONCILIATION_EPSILON"
    )
    final: bool = Field(description="the period's invoice is final")
    correctionId: UUID | None = Field(
        description="the correction last applied to the period (then status is resolved)"
    )
    stripeObjectId: str | None = Field(
        description="that correction's Stripe invoice item (ii_) or credit note (cn_)"
    )
    createdAt: Instant = Field(description="when the reconciler first found this")
    checkedAt: Instant = Field(
        description="when a reconciliation last found the same (no new report is written "
        "while nothing changes)"
    )


class Correction(WireModel):
    """A correction after close: what a final invoice billed wrong, and its fix in Stripe."""

    id: UUID
    tenantId: str
    metric: str
    customerRef: str
    stripeCustomerId: str
    periodStart: Instant
    periodEnd: Instant
    invoiceId: str = Field(description="the finalized invoice of the period")
    kind: Literal["invoice_item", "credit_note"] = Field(
        description="invoice_item: under-billed, billed on the next invoice; credit_note: "
        "over-billed, credited on the finalized invoice"
    )
    quantity: DecimalText = Field(description="whole units corrected, positive")
    amount: int = Field(ge=0, description="in the currency's minor unit")
    currency: str
    description: str
    status: Literal["proposed", "applied", "superseded"]
    stripeObjectId: str | None = Field(description="the invoice item or credit note, once applied")
    createdAt: Instant
    appliedAt: Instant | None


class CorrectionList(WireModel):
    """`GET /v1/corrections`: the tenant's corrections, newest first."""

    data: list[Correction]


class RunError(WireModel):
    """Why a reconciliation run failed."""

    code: str = Field(
        description="stripe_refused, stripe_unavailable, database_unavailable, shutting_down,"
        " abandoned or internal_error"
    )
    message: str | None


class Run(WireModel):
    """A reconciliation run: status, timings, outcome."""

    runId: UUID
    tenantId: str
    status: RunStatus
    statusUrl: str = Field(description="where to follow the run")
    requestedAt: Instant
    startedAt: Instant | None
    finishedAt: Instant | None
    reportCount: int | None = Field(description="set when the run is done")
    error: RunError | None = Field(description="set when the run failed")


class QueuedRun(Run):
    """`POST /v1/reconciliation/run` answered 202: the run to follow."""

    coalesced: bool = Field(description="true when the tenant already had this run queued")


class RunWithReports(Run):
    """A run with the reports it made (null until it is done)."""

    reports: list[Report] | None


class MetricDrift(WireModel):
    """Drift of one metric over a summary's window."""

    metric: str
    local: ExactNumber
    stripe: ExactNumber
    drift_abs: ExactNumber
    drift_pct: float
    items: int = Field(ge=0)


class OverallDrift(WireModel):
    """Drift of every metric together over a summary's window."""

    local: ExactNumber
    stripe: ExactNumber
    drift_abs: ExactNumber
    drift_pct: float
    metrics: int = Field(ge=0)
    items: int = Field(ge=0)


class Summary(WireModel):
    """`GET /v1/reconciliation/summary` (JSON): drift per metric and overall."""

    tenantId: str
    periodStart: str = Field(description="the window's start as asked: YYYY-MM, or an instant")
    periodEnd: str = Field(description="the window's end as asked: YYYY-MM, or an instant")
    perMetric: list[MetricDrift]
    overall: OverallDrift
    reconciledAt: Instant = Field(description="when the reports were last checked")
    lastError: str | None = Field(description="the reconciler's last error for the tenant")


class MonthReports(WireModel):
    """`GET /v1/reconciliation/{month}`: the latest report of each item of the month."""

    tenantId: str
    month: str = Field(description="YYYY-MM, as asked")
    reports: list[Report]


# --- operations -----------------------------------------------------------------------


class Health(WireModel):
    """`GET /health`: StripeMeter's liveness answer."""

    status: Literal["ok"]
    timestamp: datetime = Field(description="the server's time, UTC")


class Liveness(WireModel):
    """`GET /health/live`."""

    status: Literal["ok"]


class FailingTenant(WireModel):
    """A tenant the writer keeps failing for (tenant detail only)."""

    tenantId: str
    consecutiveFailures: int
    lastError: str | None
    lastErrorAt: Instant | None


class CheckResult(WireModel):
    """One readiness check."""

    status: Literal["ok", "degraded", "unhealthy"]
    detail: str
    tenants: list[FailingTenant] | SkipJsonSchema[None] = Field(
        default=None, description="stripe_writer, to callers allowed tenant detail"
    )


class StripeModeInfo(WireModel):
    """Which Stripe this instance uses: `live` (opted in with STRIPEMETER_LIVE or
    --live), `test` (a test key), `emulator` (no key), `refused` (unusable settings)."""

    mode: Literal["live", "test", "emulator", "refused"]


class Readiness(WireModel):
    """`GET /health/ready`: the worst status and every check, by name."""

    status: Literal["healthy", "degraded", "unhealthy"]
    reasons: list[str] = Field(
        description="one line per check that is not ok, e.g. "
        "'stripe: Stripe unreachable at https://api.stripe.com: connection failed'"
    )
    stripe: StripeModeInfo
    checks: dict[str, CheckResult] = Field(description="database, stripe, stripe_writer, ...")
