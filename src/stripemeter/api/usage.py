"""`GET /v1/usage`: totals of one metric over `[from, to)` from the hourly buckets."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from stripemeter.api.deps import CurrentPrincipal, Pool
from stripemeter.api.errors import ApiError
from stripemeter.jsonio import JsonResponse, iso
from stripemeter.usage import is_hour_aligned, usage_totals

router = APIRouter(tags=["usage"])


@router.get("/v1/usage", response_class=JsonResponse)
def get_usage(
    principal: CurrentPrincipal,
    pool: Pool,
    metric: Annotated[str, Query(min_length=1, max_length=128)],
    from_: Annotated[AwareDatetime, Query(alias="from")],
    to: Annotated[AwareDatetime, Query()],
    tenant_id: Annotated[UUID | None, Query(alias="tenantId")] = None,
    customer_ref: Annotated[str | None, Query(alias="customerRef", max_length=255)] = None,
) -> JsonResponse:
    """`{"total", "max", "last", "events"}` for whole hours in `[from, to)`; decimals as strings.

    `from` and `to` must be on hour boundaries (buckets are hourly); `customerRef`
    omitted sums every customer of the metric.
    """
    tenant = principal.tenant_or(tenant_id)
    for name, value in (("from", from_), ("to", to)):
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
