"""`POST /v1/events/ingest` and `GET /v1/events`.

Ingest reads the body itself (exact decimals, clear JSON errors), validates the batch
and each event, checks every event's tenant against the API key, then hands the valid
events to `ledger.ingest`. A batch-level problem, or a batch whose every event is
invalid, is refused with 400 and nothing stored; otherwise the answer is 200 with
each event's fate, invalid ones listed by index.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from stripemeter.api.deps import (
    Pool,
    Principal,
    ReadPrincipal,
    TenantIdQuery,
    authorize,
    verification_gateway,
)
from stripemeter.api.errors import ApiError, error_object
from stripemeter.api.schemas import (
    AUTH_ERRORS,
    INVALID_QUERY,
    EventPage,
    IngestAnswer,
    error_responses,
)
from stripemeter.clocks import ClockRereads
from stripemeter.config import Settings
from stripemeter.errors import IdempotencyConflict, InputError, JsonBodyError
from stripemeter.ingest import ledger
from stripemeter.ingest.clock_bound import rejudge_future_events
from stripemeter.ingest.group import GroupCommitter
from stripemeter.ingest.validation import (
    CONTROL_CHARS,
    DERIVED_KEY_PREFIX,
    MAX_DECIMALS,
    MAX_HEADER_KEY_CHARS,
    MAX_KEY_CHARS,
    MAX_QUANTITY,
    MAX_QUANTITY_TEXT,
    METRIC_PATTERN,
    PRINTABLE_PATTERN,
    STRIPE_MAX_DIGITS,
    EventRules,
    ValidEvent,
    check_header_key,
    parse_batch,
)
from stripemeter.jsonio import JsonResponse, canonical_bytes, parse_json_exact
from stripemeter.ops.metrics import REJECTED_METRIC_LABEL, record_ingest
from stripemeter.stripe.gateway import StripeGateway
from stripemeter.tenants import MAX_TENANT_CHARS, TENANT_PATTERN, canonical_or_none

router = APIRouter(tags=["events"])

# Request ids: a random per-process prefix and a counter (unique without a syscall each).
_REQUEST_PREFIX = "req_" + os.urandom(6).hex()
_REQUEST_COUNTER = itertools.count(1)


def next_request_id() -> str:
    """A new id for an ingest request, unique across processes and restarts."""
    return f"{_REQUEST_PREFIX}{next(_REQUEST_COUNTER):010x}"


# What `validation.validate_event` enforces, as JSON Schema (ECMA-262 patterns: `$` is
# the end of the text). Generated clients and fuzzers read it from /openapi.json.
_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tenantId", "metric", "customerRef", "quantity", "ts"],
    "additionalProperties": False,
    "properties": {
        "tenantId": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_TENANT_CHARS,
            "pattern": TENANT_PATTERN,
            "description": "a name or a UUID (UUIDs only under STRICT_TENANT_ID_UUID)",
        },
        "metric": {"type": "string", "pattern": METRIC_PATTERN},
        "customerRef": {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": PRINTABLE_PATTERN,
        },
        "quantity": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": int(MAX_QUANTITY),
            "description": f"at most {MAX_DECIMALS} decimal places; less than "
            f"{MAX_QUANTITY_TEXT} (Stripe meter values have at most {STRIPE_MAX_DIGITS} digits)",
        },
        "ts": {"type": "string", "format": "date-time"},
        "idempotencyKey": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": MAX_KEY_CHARS,
            # Printable, and not starting with the prefix reserved for derived keys.
            "pattern": f"^[^{DERIVED_KEY_PREFIX}{CONTROL_CHARS}][^{CONTROL_CHARS}]*$",
        },
        "resourceId": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
        "source": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
        "meta": {"type": ["object", "null"]},
    },
}
_INGEST_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {
                        "events": {"type": "array", "minItems": 1, "items": _EVENT_SCHEMA}
                    },
                }
            }
        },
    },
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_HEADER_KEY_CHARS,
                "pattern": PRINTABLE_PATTERN,
            },
        }
    ],
}


def _bad_request(err: InputError, index: int | None = None) -> ApiError:
    field = err.field
    if index is not None:
        field = f"events[{index}].{field}" if field else f"events[{index}]"
    message = f"{field}: {err.message}" if field and index is not None else err.message
    return ApiError(400, err.code, message, field)


def _check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if content_type is None:
        return
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {media or 'nothing'!r}",
            "Content-Type",
        )


def _check_tenants(raw_events: list[Any], principal_tenant: str | None) -> None:
    """403 for the first event addressed to a tenant other than the key's."""
    if principal_tenant is None:
        return
    for index, raw in enumerate(raw_events):
        tenant = raw.get("tenantId") if isinstance(raw, dict) else None
        if tenant == principal_tenant or not isinstance(tenant, str):
            continue
        canonical = canonical_or_none(tenant)  # an invalid id is that event's own 400
        if canonical is not None and canonical != principal_tenant:
            raise ApiError(
                403,
                "forbidden_tenant",
                f"events[{index}].tenantId: this API key belongs to tenant {principal_tenant} "
                f"and may not write usage for tenant {canonical}",
                f"events[{index}].tenantId",
            )


def _all_invalid(errors: list[InputError]) -> ApiError:
    """400 for a batch with no valid event: the first problem, and each one by index."""
    error = _bad_request(errors[0], 0)
    if len(errors) > 1:
        error.message = f"all {len(errors)} events are invalid; first: {error.message}"
    error.extra = {
        "errors": [
            {"index": i, "error": error_object(e.code, e.message, e.field)}
            for i, e in enumerate(errors)
        ]
    }
    return error


@router.post(
    "/v1/events/ingest",
    openapi_extra=_INGEST_OPENAPI,
    # Documented only: the route returns its pre-serialized JsonResponse, which FastAPI
    # passes through without validating or re-rendering it (the hot path).
    response_model=IngestAnswer,
    responses=error_responses(
        {
            400: "invalid_json, a batch-level problem (events missing, empty or too many; "
            "the Idempotency-Key header malformed), or every event invalid: `errors` "
            "lists each one",
            **AUTH_ERRORS,
            409: "idempotency_key_reused: the Idempotency-Key came with another body",
            413: "payload_too_large: the body is over the size limit",
            415: "unsupported_media_type: Content-Type is not JSON",
        }
    ),
)
async def ingest_events(request: Request) -> JsonResponse:
    """Store a batch of usage events exactly once; report each event's fate."""
    # The hot path: dependencies resolved by hand, as FastAPI's solver is a
    # measurable share of a one-event request.
    principal = await authorize(request, "ingest")
    settings: Settings = request.app.state.settings
    _check_content_type(request)
    header_value = request.headers.get("idempotency-key")
    try:
        header_key = None if header_value is None else check_header_key(header_value)
        body = parse_json_exact(await request.body())
        raw_events = parse_batch(body, settings.MAX_INGEST_BATCH)
    except JsonBodyError as exc:
        raise ApiError(400, "invalid_json", str(exc)) from None
    except InputError as exc:
        raise _bad_request(exc) from None
    _check_tenants(raw_events, principal.tenant_id)

    now = datetime.now(UTC)
    rules = EventRules.from_settings(settings)
    items: list[ValidEvent | InputError] = []
    for raw in raw_events:
        try:
            items.append(rules.validate(raw, now))
        except InputError as exc:
            items.append(exc)
    if any(isinstance(item, InputError) and item.code == "future_timestamp" for item in items):
        await _rejudge_on_clocks(request, settings, rules, raw_events, items, now)
    if all(isinstance(item, InputError) for item in items):
        record_ingest({(REJECTED_METRIC_LABEL, "rejected"): len(items)})
        raise _all_invalid([item for item in items if isinstance(item, InputError)])

    # Only a request-level key needs the body's fingerprint (to spot a reused key).
    body_sha256 = "" if header_key is None else hashlib.sha256(canonical_bytes(body)).hexdigest()
    prepared = ledger.prepare(
        items,
        request_id=next_request_id(),
        header_key=header_key,
        scope=_request_scope(principal, items),
        body_sha256=body_sha256,
    )
    committer: GroupCommitter = request.app.state.ingest
    try:
        inserted = await committer.store(prepared)
    except IdempotencyConflict:
        raise ApiError(
            409,
            "idempotency_key_reused",
            f"Idempotency-Key {header_key!r} was already used with a different body; "
            "nothing was stored",
            "Idempotency-Key",
        ) from None
    outcome = ledger.outcome_of(prepared, inserted)
    record_ingest(outcome.by_metric)
    return JsonResponse(outcome.answer())


async def _rejudge_on_clocks(
    request: Request,
    settings: Settings,
    rules: EventRules,
    raw_events: list[Any],
    items: list[ValidEvent | InputError],
    now: datetime,
) -> None:
    """Judge the future-dated events again on their customers' test clocks
    (`stripemeter.ingest.clock_bound`)."""

    def gateway() -> StripeGateway | None:
        try:
            return verification_gateway(request)
        except ApiError:  # Stripe not configured: the known frozen times are all there is
            return None

    rereads: ClockRereads | None = getattr(request.app.state, "clock_rereads", None)
    if rereads is None:
        rereads = request.app.state.clock_rereads = ClockRereads(settings.CLOCK_REREAD_INTERVAL_S)
    await anyio.to_thread.run_sync(
        rejudge_future_events,
        request.app.state.pool,
        gateway,
        rereads,
        raw_events,
        items,
        rules.validate,
        now,
    )


def _request_scope(principal: Principal, items: list[ValidEvent | InputError]) -> str:
    """Namespace of a request-level Idempotency-Key: the caller's tenant.

    Under BYPASS_AUTH there is no caller tenant, so the batch's own tenants stand in:
    two tenants may each send `demo-batch-1` without colliding.
    """
    if principal.tenant_id is not None:
        return principal.scope
    tenants = sorted({str(item.tenant_id) for item in items if isinstance(item, ValidEvent)})
    return "bypass:" + ",".join(tenants)


def _one_bound(
    name: str, value: datetime | None, alias: str, aliased: datetime | None
) -> datetime | None:
    """A window bound given as `name` or as its StripeMeter alias; 400 for both at once."""
    if value is not None and aliased is not None:
        raise ApiError(
            400,
            "conflicting_parameters",
            f"{name} and {alias} are the same bound; give only one of them",
            alias,
        )
    return value if value is not None else aliased


def _encode_cursor(ts: str, seq: int) -> str:
    return base64.urlsafe_b64encode(f"{ts}|{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts_text, seq_text = base64.urlsafe_b64decode(padded).decode().split("|")
        return datetime.fromisoformat(ts_text), int(seq_text)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            400, "invalid_cursor", "cursor is not one this API returned", "cursor"
        ) from None


@router.get(
    "/v1/events",
    response_model=EventPage,
    responses=error_responses(
        {
            400: f"{INVALID_QUERY}; invalid_cursor; conflicting_parameters (from with "
            "startTime, or to with endTime)",
            **AUTH_ERRORS,
        }
    ),
)
def list_events(
    principal: ReadPrincipal,
    pool: Pool,
    tenant_id: TenantIdQuery = None,
    metric: Annotated[str | None, Query(pattern=METRIC_PATTERN)] = None,
    customer_ref: Annotated[
        str | None, Query(alias="customerRef", max_length=255, pattern=PRINTABLE_PATTERN)
    ] = None,
    from_: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    to: Annotated[AwareDatetime | None, Query()] = None,
    start_time: Annotated[
        AwareDatetime | None,
        Query(alias="startTime", description="alias of `from` (StripeMeter's name)"),
    ] = None,
    end_time: Annotated[
        AwareDatetime | None,
        Query(alias="endTime", description="alias of `to` (StripeMeter's name)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> JsonResponse:
    """Stored events, newest first (event time, then arrival); page with `nextCursor`.

    `from` (inclusive) and `to` (exclusive) bound the event time; `startTime` and
    `endTime` are the same bounds under StripeMeter's names (one spelling per bound).
    """
    tenant = principal.tenant_or(tenant_id)
    from_ = _one_bound("from", from_, "startTime", start_time)
    to = _one_bound("to", to, "endTime", end_time)
    after_ts, after_seq = _decode_cursor(cursor) if cursor else (None, None)
    filters = {
        "tenant_id": tenant,
        "metric": metric,
        "customer_ref": customer_ref,
        "from": from_,
        "to": to,
        "after_ts": after_ts,
        "after_seq": after_seq,
        "limit": limit,
    }
    with pool.connection() as conn:
        events = ledger.list_events(conn, filters)
    next_cursor = (
        _encode_cursor(events[-1]["ts"], events[-1]["seq"]) if len(events) == limit else None
    )
    return JsonResponse({"events": events, "nextCursor": next_cursor})
