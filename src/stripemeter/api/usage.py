"""`GET /v1/usage`: totals of one metric over `[from, to)` from the hourly buckets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from stripemeter.api.deps import Pool, ReadPrincipal, TenantIdQuery
from stripemeter.api.errors import ApiError
from stripemeter.api.schemas import AUTH_ERRORS, INVALID_QUERY, UsageAnswer, error_responses
from stripemeter.ingest.usage import is_hour_aligned, usage_totals
from stripemeter.ingest.validation import EPOCH, METRIC_PATTERN, PRINTABLE_PATTERN
from stripemeter.jsonio import JsonResponse, iso

# The last instant whose UTC conversion cannot overflow.
LATEST = datetime(9999, 12, 30, tzinfo=UTC)

router = APIRouter(tags=["usage"])


@router.get(
    "/v1/usage",
    response_model=UsageAnswer,
    responses=error_responses(
        {
            400: f"{INVALID_QUERY}; invalid_value (from/to outside 1970..9999), "
            "unaligned_window (not on an hour), invalid_window (to not after from)",
            **AUTH_ERRORS,
        }
    ),
)
def get_usage(
    principal: ReadPrincipal,
    pool: Pool,
    metric: Annotated[str, Query(pattern=METRIC_PATTERN)],
    from_: Annotated[AwareDatetime, Query(alias="from")],
    to: Annotated[AwareDatetime, Query()],
    tenant_id: TenantIdQuery = None,
    customer_ref: Annotated[
        str | None, Query(alias="customerRef", max_length=255, pattern=PRINTABLE_PATTERN)
    ] = None,
) -> JsonResponse:
    """`{"total", "max", "last", "events"}` for whole hours in `[from, to)`; decimals as strings.

    `from` and `to` must be on hour boundaries (buckets are hourly); `customerRef`
    omitted sums every customer of the metric.
    """
    tenant = principal.tenant_or(tenant_id)
    for name, value in (("from", from_), ("to", to)):
        if not EPOCH <= value <= LATEST:
            raise ApiError(400, "invalid_value", f"{name} must be between 1970 and 9999", name)
        if not is_hour_aligned(value):
            raise ApiError(
                400,
                "unaligned_window",
                f"{name} must be on an hour boundary (e.g. 2026-11-24T10:00:00Z); usage is "
                "kept per hour",
                name,
            )
    if to <= from_:
        raise ApiError(400, "invalid_window", "to must be later than from", "to")
    with pool.connection() as conn:
        totals = usage_totals(
            conn, tenant_id=tenant, metric=metric, customer_ref=customer_ref, start=from_, end=to
        )
    echo = {
        "tenantId": str(tenant),
        "metric": metric,
        "customerRef": customer_ref,
        "from": iso(from_),
        "to": iso(to),
    }
    return JsonResponse({**totals.answer(), **echo})
