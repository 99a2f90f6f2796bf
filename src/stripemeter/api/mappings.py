"""`GET/POST /v1/mappings` and `DELETE /v1/mappings/{id}`.

A metric has one mapping, switched on (`active`, the default) or off (`active: false`:
kept, but the writer and the reconciler ignore it); see `mappings.store`.

Changing mappings needs an admin key (they decide which Stripe price a tenant bills);
listing them needs read. A mapping naming a `subscriptionItemId` is checked with Stripe
before it is stored (`mappings.verify_item`): the item must exist, belong to a Stripe
customer bound to the tenant, and be on the mapping's price.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from stripemeter.aggregations import AggregationName
from stripemeter.api.deps import (
    AdminPrincipal,
    AppSettings,
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
    Mapping,
    MappingDeleted,
    MappingList,
    error_responses,
)
from stripemeter.errors import ItemRefused, StripeRefused, StripeUnavailable
from stripemeter.ingest.validation import METRIC_PATTERN, PRINTABLE_PATTERN
from stripemeter.jsonio import JsonResponse
from stripemeter.mappings import store as mappings

router = APIRouter(tags=["mappings"], route_class=AuthFirstRoute)

StripeId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]
Label = Annotated[str, Field(min_length=1, max_length=255, pattern=PRINTABLE_PATTERN)]


class MappingIn(BaseModel):
    """A mapping as posted; unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tenant_id: TenantIdBody = Field(alias="tenantId")
    metric: Annotated[str, Field(pattern=METRIC_PATTERN)]
    aggregation: AggregationName
    stripe_account: Label | None = Field(default=None, alias="stripeAccount")
    price_id: StripeId = Field(alias="priceId")
    subscription_item_id: StripeId | None = Field(default=None, alias="subscriptionItemId")
    currency: Annotated[str, Field(pattern=r"^[A-Za-z]{3}$")] | None = None
    meter_id: StripeId | None = Field(default=None, alias="meterId")
    meter_event_name: Label | None = Field(default=None, alias="meterEventName")
    meter_customer_key: Label | None = Field(default=None, alias="meterCustomerKey")
    meter_value_key: Label | None = Field(default=None, alias="meterValueKey")
    active: bool = Field(
        default=True,
        description="false stores the mapping switched off: nothing is pushed to Stripe "
        "or reconciled for the metric until it is posted again with true",
    )


@router.get(
    "/v1/mappings",
    response_model=MappingList,
    responses=error_responses({400: INVALID_QUERY, **AUTH_ERRORS}),
)
def list_mappings(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
    active: Annotated[
        bool | None, Query(description="only the active (true) or switched-off (false) ones")
    ] = None,
) -> JsonResponse:
    """The tenant's mappings (active first)."""
    tenant = principal.tenant_or(tenant_id)
    with pool.connection() as conn:
        rows = mappings.list_mappings(conn, tenant, active=active)
    return JsonResponse({"mappings": rows})


@router.post(
    "/v1/mappings",
    response_model=Mapping,
    responses={
        201: {"model": Mapping, "description": "created: the tenant had no mapping of the metric"},
        **error_responses(
            {
                400: "invalid_request, invalid_json; unknown_subscription_item, "
                "subscription_item_not_bound, subscription_item_price_mismatch "
                "(field subscriptionItemId)",
                **AUTH_ERRORS,
                409: "conflict: switching off a metric that has both an active and an "
                "older inactive mapping (delete the inactive one first)",
                503: "stripe_unavailable, stripe_not_configured: the subscription item "
                "could not be checked; nothing was changed",
            }
        ),
    },
)
async def upsert_mapping(
    body: MappingIn,
    request: Request,
    principal: AdminPrincipal,
    pool: Pool,
    settings: AppSettings,
) -> JsonResponse:
    """Create the mapping of (tenant, metric), or replace its target and flag (201 / 200).

    `active: false` (StripeMeter's field) keeps the mapping but switches the metric's
    billing off; posting again with `active` true or omitted switches it back on.
    """
    principal.require_tenant(body.tenant_id)
    values = body.model_dump()
    values["stripe_account"] = body.stripe_account or settings.STRIPE_ACCOUNT
    if body.subscription_item_id is not None:
        await _verify_item(request, pool, body)

    def store() -> tuple[dict[str, object], bool]:
        with pool.connection() as conn:
            return mappings.upsert_mapping(conn, values)

    row, created = await anyio.to_thread.run_sync(store)
    return JsonResponse(row, status_code=201 if created else 200)


async def _verify_item(request: Request, pool: Pool, body: MappingIn) -> None:
    """Refuse (400) a subscription item that is not the tenant's, on the mapping's price.

    The bound customers are read first and the connection returned before Stripe is
    asked, so a slow Stripe holds no pooled connection.
    """
    assert body.subscription_item_id is not None
    item_id = body.subscription_item_id

    def bound() -> set[str]:
        with pool.connection() as conn:
            return mappings.bound_stripe_customers(conn, body.tenant_id)

    customers = await anyio.to_thread.run_sync(bound)
    gateway = verification_gateway(request)
    try:
        await anyio.to_thread.run_sync(
            mappings.verify_item, gateway, item_id, body.price_id, customers
        )
    except ItemRefused as exc:
        raise ApiError(400, exc.code, str(exc), "subscriptionItemId") from None
    except (StripeRefused, StripeUnavailable) as exc:
        raise ApiError(
            503,
            "stripe_unavailable",
            f"could not check subscriptionItemId with Stripe, nothing was changed; "
            f"retry later ({exc})",
        ) from None


@router.delete(
    "/v1/mappings/{mapping_id}",
    response_model=MappingDeleted,
    responses=error_responses(
        {400: INVALID_QUERY, **AUTH_ERRORS, 404: "not_found: no mapping with this id"}
    ),
)
def delete_mapping(mapping_id: UUID, principal: AdminPrincipal, pool: Pool) -> JsonResponse:
    """Delete a mapping of the caller's tenant (404 when there is none)."""
    with pool.connection() as conn:
        found = mappings.get_mapping(conn, mapping_id)
        if found is not None:
            principal.require_tenant(found["tenantId"])
            mappings.delete_mapping(conn, mapping_id)
    if found is None:
        raise ApiError(404, "not_found", f"no mapping with id {mapping_id}", "id")
    return JsonResponse({"deleted": str(mapping_id)})
