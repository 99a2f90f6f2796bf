"""Usage reads: `GET /v1/usage`, and StripeMeter's `GET /v1/usage/current` and
`POST /v1/usage/projection`.

`/v1/usage` totals one metric over `[from, to)` from the hourly buckets. The two
StripeMeter calls work per customer and per active mapping in the customer's current
Stripe billing period: the period is the bound Stripe customer's subscription item on
the mapping's price, as Stripe states it (the reconciler's view, `reconciler.engine`),
the value is the reconciler's local aggregate over it; the projection extrapolates it
linearly to the period's end and says so (`method`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from stripemeter.api.deps import (
    AuthFirstRoute,
    Pool,
    ReadPrincipal,
    TenantIdBody,
    TenantIdQuery,
    verification_gateway,
)
from stripemeter.api.errors import ApiError
from stripemeter.api.schemas import (
    AUTH_ERRORS,
    INVALID_QUERY,
    CurrentUsage,
    Projection,
    UsageAnswer,
    error_responses,
)
from stripemeter.errors import StripeRefused, StripeUnavailable
from stripemeter.ingest.usage import is_hour_aligned, usage_totals
from stripemeter.ingest.validation import EPOCH, METRIC_PATTERN, PRINTABLE_PATTERN
from stripemeter.jsonio import JsonResponse, format_decimal, iso
from stripemeter.mappings.bindings import stripe_customer_for
from stripemeter.mappings.meters import Mapping, active_mappings
from stripemeter.periods import from_unix
from stripemeter.reconciler.engine import local_value
from stripemeter.stripe.gateway import ItemInfo

# The last instant whose UTC conversion cannot overflow.
LATEST = datetime(9999, 12, 30, tzinfo=UTC)

# AuthFirstRoute: the projection has a body (401 before its schema is described).
router = APIRouter(tags=["usage"], route_class=AuthFirstRoute)


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


# --- StripeMeter's current usage and projection ------------------------------------------

_LINEAR_KINDS = frozenset({"sum", "count"})


@dataclass(frozen=True)
class _MetricNow:
    mapping: Mapping
    item: ItemInfo
    current: Decimal


def _current_usage(
    request: Request, pool: Pool, tenant: str, customer_ref: str
) -> tuple[str, list[_MetricNow], int | None]:
    """(Stripe customer, each active mapping's usage in its current period, clock time).

    The period is the bound customer's subscription item on the mapping's price, as
    Stripe states it (what the reconciler compares); the value is the reconciler's
    local aggregate over it. 404 `customer_not_bound` when the customerRef has no
    Stripe customer; a mapping the customer has no item for is left out.
    """
    with pool.connection() as conn:
        customer_id = stripe_customer_for(conn, tenant, customer_ref)
        mappings = active_mappings(conn, tenant)
        conn.commit()
    if customer_id is None:
        raise ApiError(
            404,
            "customer_not_bound",
            f"customerRef {customer_ref!r} of tenant {tenant} is not bound to a Stripe "
            "customer, so it has no billing period; bind it first "
            "(PUT /v1/customers/{customerRef}/binding)",
            "customerRef",
        )
    gateway = verification_gateway(request)
    found: list[_MetricNow] = []
    try:
        clock = gateway.clock_time(customer_id)
        for mapping in mappings:
            item = gateway.find_item(customer_id, mapping.price_id, mapping.subscription_item_id)
            if item is None:
                continue
            with pool.connection() as conn:
                value, _ = local_value(
                    conn,
                    mapping,
                    customer_ref,
                    from_unix(item.period_start),
                    from_unix(item.period_end),
                )
            found.append(_MetricNow(mapping, item, value))
    except (StripeRefused, StripeUnavailable) as exc:
        raise ApiError(
            503,
            "stripe_unavailable",
            f"could not read the customer's subscription from Stripe; retry later ({exc})",
        ) from None
    return customer_id, found, clock


def _period(item: ItemInfo) -> dict[str, str]:
    return {"start": iso(from_unix(item.period_start)), "end": iso(from_unix(item.period_end))}


_CURRENT_ERRORS = {
    400: f"{INVALID_QUERY}",
    **AUTH_ERRORS,
    404: "customer_not_bound: the customerRef has no Stripe customer (no billing period)",
    503: "stripe_unavailable, stripe_not_configured: Stripe could not be read",
}


@router.get(
    "/v1/usage/current",
    response_model=CurrentUsage,
    responses=error_responses(_CURRENT_ERRORS),
)
def get_current_usage(
    request: Request,
    principal: ReadPrincipal,
    pool: Pool,
    customer_ref: Annotated[
        str, Query(alias="customerRef", min_length=1, max_length=255, pattern=PRINTABLE_PATTERN)
    ],
    tenant_id: TenantIdQuery = None,
) -> JsonResponse:
    """Usage per metric in the customer's current Stripe billing period (StripeMeter's call).

    One entry per active mapping the customer has a subscription item for; the period
    is that item's, as Stripe states it; decimals as strings.
    """
    tenant = principal.tenant_or(tenant_id)
    customer_id, found, _ = _current_usage(request, pool, tenant, customer_ref)
    metrics = [
        {
            "name": m.mapping.metric,
            "aggregation": m.mapping.aggregation,
            "current": format_decimal(m.current),
            "period": _period(m.item),
            "subscriptionItemId": m.item.item_id,
        }
        for m in found
    ]
    return JsonResponse(
        {
            "tenantId": tenant,
            "customerRef": customer_ref,
            "stripeCustomerId": customer_id,
            "metrics": metrics,
        }
    )


class ProjectionIn(BaseModel):
    """Body of `POST /v1/usage/projection`; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tenant_id: TenantIdBody | None = Field(
        default=None, alias="tenantId", description="defaults to the key's tenant"
    )
    customer_ref: Annotated[str, Field(min_length=1, max_length=255, pattern=PRINTABLE_PATTERN)] = (
        Field(alias="customerRef")
    )


_SIX_PLACES = Decimal("0.000001")


@router.post(
    "/v1/usage/projection",
    response_model=Projection,
    responses=error_responses(
        {**_CURRENT_ERRORS, 400: "invalid_request, invalid_json: the body (field names it)"}
    ),
)
def project_usage(
    body: ProjectionIn, request: Request, principal: ReadPrincipal, pool: Pool
) -> JsonResponse:
    """End-of-period estimate per metric: linear extrapolation of the period so far.

    `projected = current x (period length / time elapsed)` for sum and count; a max or
    last value is projected as it stands (`method: "current"` on that metric). The
    instant is now, or the customer's Stripe test clock time.
    """
    tenant = principal.tenant_or(body.tenant_id)
    _, found, clock = _current_usage(request, pool, tenant, body.customer_ref)
    now = clock if clock is not None else int(time.time())
    metrics = []
    for m in found:
        length = m.item.period_end - m.item.period_start
        elapsed = min(max(now - m.item.period_start, 0), length)
        fraction = Decimal(elapsed) / Decimal(length) if length > 0 else Decimal(1)
        linear = m.mapping.aggregation in _LINEAR_KINDS
        if linear and elapsed > 0:
            projected = (m.current * Decimal(length) / Decimal(elapsed)).quantize(_SIX_PLACES)
        else:
            projected = m.current
        metrics.append(
            {
                "name": m.mapping.metric,
                "aggregation": m.mapping.aggregation,
                "current": format_decimal(m.current),
                "projected": format_decimal(projected),
                "method": "linear" if linear else "current",
                "period": _period(m.item),
                "elapsedFraction": format_decimal(fraction.quantize(_SIX_PLACES)),
            }
        )
    return JsonResponse(
        {
            "tenantId": tenant,
            "customerRef": body.customer_ref,
            "method": "linear",
            "asOf": iso(from_unix(now)),
            "metrics": metrics,
        }
    )
