"""Corrections after close over HTTP: list them, apply one.

- `GET /v1/corrections?tenantId=T[&status=proposed|applied|superseded]` (read scope):
  `{"data": [Correction...]}`, newest first.
- `POST /v1/corrections/{id}/apply[?dryRun=true]` (admin scope): the Correction, 200.
  Applying creates its invoice item or credit note in Stripe exactly once; applying an
  applied one returns it unchanged and calls Stripe for nothing; a dry run changes
  nothing. 404 `correction_not_found` for an unknown id and for another tenant's; 409
  `correction_superseded` for one a newer proposal replaced; 503 `stripe_unavailable`
  when Stripe kept failing (nothing is lost: apply again); 422 `stripe_refused` when
  Stripe refused the object.

What a correction is and when one is proposed: `stripemeter.corrections`.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request

from stripemeter.api.deps import (
    AdminPrincipal,
    AuthFirstRoute,
    Pool,
    ReadPrincipal,
    TenantIdQuery,
    verification_gateway,
)
from stripemeter.api.errors import ApiError
from stripemeter.api.schemas import (
    AUTH_ERRORS,
    INVALID_QUERY,
    Correction,
    CorrectionList,
    error_responses,
)
from stripemeter.corrections.apply import apply_correction
from stripemeter.corrections.store import Status, list_corrections
from stripemeter.errors import CorrectionNotFound, CorrectionSuperseded, StripeRefused
from stripemeter.jsonio import JsonResponse

router = APIRouter(tags=["corrections"], route_class=AuthFirstRoute)


@router.get(
    "/v1/corrections",
    response_model=CorrectionList,
    responses=error_responses({400: INVALID_QUERY, **AUTH_ERRORS}),
)
def corrections_list(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
    status: Annotated[
        Status | None,
        Query(description="only corrections in this status: proposed, applied or superseded"),
    ] = None,
) -> JsonResponse:
    """The tenant's corrections after close, newest first (read scope)."""
    tenant = principal.tenant_or(tenant_id)
    with pool.connection() as conn:
        found = list_corrections(conn, tenant, status)
    return JsonResponse({"data": [c.to_json() for c in found]})


@router.post(
    "/v1/corrections/{correctionId}/apply",
    response_model=Correction,
    responses=error_responses(
        {
            400: INVALID_QUERY,
            **AUTH_ERRORS,
            404: "correction_not_found: no such correction, or another tenant's",
            409: "correction_superseded: a newer proposal for the period replaced it",
            422: "stripe_refused: Stripe refused the invoice item or credit note",
            503: "stripe_unavailable, stripe_not_configured: apply again later",
        }
    ),
)
def corrections_apply(
    correction_id: Annotated[
        UUID, Path(alias="correctionId", description="the id `GET /v1/corrections` gave")
    ],
    request: Request,
    principal: AdminPrincipal,
    pool: Pool,
    dry_run: Annotated[
        bool, Query(alias="dryRun", description="show the correction, change nothing")
    ] = False,
) -> JsonResponse:
    """Apply a correction in Stripe (admin scope): an invoice item on the customer's next
    invoice, or a credit note on the finalized invoice; the period then reads `resolved`.

    Idempotent: the Stripe call carries the Idempotency-Key
    `stripemeter-correction-<id>`, and an applied correction is returned unchanged.
    """
    try:
        gateway = None if dry_run else verification_gateway(request)
        found = apply_correction(
            pool, gateway, correction_id, tenant_id=principal.tenant_id, dry_run=dry_run
        )
    except CorrectionNotFound as exc:
        raise ApiError(404, "correction_not_found", str(exc), "correctionId") from exc
    except CorrectionSuperseded as exc:
        raise ApiError(409, "correction_superseded", str(exc), "correctionId") from exc
    except StripeRefused as exc:
        raise ApiError(422, "stripe_refused", str(exc)) from exc
    return JsonResponse(found.to_json())
