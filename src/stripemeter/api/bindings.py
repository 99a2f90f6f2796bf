"""Customer bindings: which Stripe customer each of a tenant's customerRefs is billed as.

- `PUT /v1/customers/{customerRef}/binding {"tenantId"?, "stripeCustomerId"}` (admin):
  bind after checking with Stripe that the customer exists; 201 new, 200 replaced.
  409 `customer_already_bound` when another tenant (never named) or another customerRef
  of this tenant has that Stripe customer.
- `GET /v1/customers/bindings?tenantId` (read): the tenant's bindings.
- `DELETE /v1/customers/{customerRef}/binding?tenantId` (admin): later usage of the
  customerRef stays in the ledger and is not pushed until it is bound again.

The Stripe check runs before a database connection is taken, so a slow Stripe holds
no pooled connection.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from stripemeter.api.deps import (
    AdminPrincipal,
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
    Binding,
    BindingDeleted,
    BindingList,
    error_responses,
)
from stripemeter.errors import (
    BindingConflict,
    StripeRefused,
    StripeUnavailable,
    UnknownStripeCustomer,
)
from stripemeter.ingest.validation import PRINTABLE_PATTERN
from stripemeter.jsonio import JsonResponse
from stripemeter.mappings import bindings

router = APIRouter(tags=["bindings"], route_class=AuthFirstRoute)

CustomerRef = Annotated[
    str,
    Path(
        alias="customerRef",
        min_length=1,
        max_length=255,
        pattern=PRINTABLE_PATTERN,
        description="the customerRef your events carry",
    ),
]
STRIPE_CUSTOMER_PATTERN = r"^cus_[A-Za-z0-9_]{1,251}$"


class BindingIn(BaseModel):
    """Body of the PUT; unknown fields are refused so typos do not pass silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tenant_id: TenantIdBody | None = Field(
        default=None, alias="tenantId", description="defaults to the key's tenant"
    )
    stripe_customer_id: str = Field(
        alias="stripeCustomerId",
        pattern=STRIPE_CUSTOMER_PATTERN,
        description="the Stripe customer (cus_...) this customerRef is billed as",
    )


def stripe_error(exc: StripeRefused | StripeUnavailable) -> ApiError:
    """A Stripe failure during an ownership check, as the API answers it (503)."""
    return ApiError(
        503,
        "stripe_unavailable",
        f"could not check with Stripe, nothing was changed; retry later ({exc})",
    )


@router.put(
    "/v1/customers/{customerRef}/binding",
    response_model=Binding,
    responses={
        201: {"model": Binding, "description": "created: the customerRef was not bound"},
        **error_responses(
            {
                400: "invalid_request, invalid_json; unknown_stripe_customer (Stripe has no "
                "such customer)",
                **AUTH_ERRORS,
                409: "customer_already_bound: another customerRef or tenant has this Stripe "
                "customer",
                503: "stripe_unavailable, stripe_not_configured: the customer could not be "
                "checked; nothing was changed",
            }
        ),
    },
)
async def put_binding(
    customer_ref: CustomerRef,
    body: BindingIn,
    request: Request,
    principal: AdminPrincipal,
    pool: Pool,
) -> JsonResponse:
    """Bind customerRef to a Stripe customer after Stripe confirms it exists (201 / 200)."""
    tenant = principal.tenant_or(body.tenant_id)
    gateway = verification_gateway(request)
    customer = body.stripe_customer_id
    try:
        clock = await anyio.to_thread.run_sync(bindings.verify_customer, gateway, customer)
    except UnknownStripeCustomer as exc:
        raise ApiError(400, "unknown_stripe_customer", str(exc), "stripeCustomerId") from None
    except (StripeRefused, StripeUnavailable) as exc:
        raise stripe_error(exc) from None

    def store() -> tuple[bool, dict[str, object] | None]:
        with pool.connection() as conn:
            created = bindings.bind(
                conn, tenant, customer_ref, customer, verified=True, clock=clock
            )
            conn.commit()
            return created, bindings.get_binding(conn, tenant, customer_ref)

    try:
        created, row = await anyio.to_thread.run_sync(store)
    except BindingConflict as exc:
        raise ApiError(409, "customer_already_bound", str(exc), "stripeCustomerId") from None
    return JsonResponse(row, status_code=201 if created else 200)


@router.get(
    "/v1/customers/bindings",
    response_model=BindingList,
    responses=error_responses({400: INVALID_QUERY, **AUTH_ERRORS}),
)
def list_bindings(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
) -> JsonResponse:
    """The tenant's bindings, by customerRef."""
    tenant = principal.tenant_or(tenant_id)
    with pool.connection() as conn:
        rows = bindings.list_bindings(conn, tenant)
    return JsonResponse({"tenantId": str(tenant), "bindings": rows})


@router.delete(
    "/v1/customers/{customerRef}/binding",
    response_model=BindingDeleted,
    responses=error_responses(
        {400: INVALID_QUERY, **AUTH_ERRORS, 404: "not_found: the customerRef is not bound"}
    ),
)
def delete_binding(
    customer_ref: CustomerRef,
    principal: AdminPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
) -> JsonResponse:
    """Unbind customerRef (404 when it is not bound)."""
    tenant = principal.tenant_or(tenant_id)
    with pool.connection() as conn:
        deleted = bindings.unbind(conn, tenant, customer_ref)
        conn.commit()
    if not deleted:
        raise ApiError(
            404, "not_found", f"customerRef {customer_ref!r} is not bound", "customerRef"
        )
    return JsonResponse({"tenantId": str(tenant), "customerRef": customer_ref, "deleted": True})
