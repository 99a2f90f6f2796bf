"""The receiving side of Stripe webhooks: classify a verified event, record it once.

`record(conn, event)` runs in ONE transaction:

- `INSERT INTO stripe_webhook_events ... ON CONFLICT (event_id) DO NOTHING`: a replay or
  a redelivery of an event id finds its row and changes nothing (`Recorded.duplicate`);
- the row is the work item: `pending` with an action for the workers, or `done` /
  `ignored` when nothing is left to do;
- the meter errors a `billing.meter.error_report_triggered` reports are stored with it;
- `pg_notify('stripemeter_work', event_id)`, delivered by PostgreSQL on commit, wakes the
  workers' LISTEN connection (`stripemeter.webhooks.work`).

What each type asks (`classify`):

    invoice.created, a draft of a subscription   flush: a writer pass for the customer now,
                                                 so the closing period's usage reaches
                                                 Stripe inside the draft's grace window
    invoice.finalized                            reconcile: the tenant's periods now
    test_helpers.test_clock.ready                clock: every known customer of the clock
                                                 moves forward to its frozen_time, here
                                                 (`stripemeter.clocks`)
    billing.meter.error_report_triggered         meter_errors: stored here, on /metrics and
    (also v1.billing.meter.error_report_...)     GET /v1/stripe/meter_errors (the tenants
                                                 whose meter it is) and a warning line
    anything else, or no tenant bound to the     none: recorded as ignored, with why
    invoice's Stripe customer

The tenant comes from `customer_bindings` (one Stripe customer belongs to at most one
tenant), never from the event itself.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg
from prometheus_client import Counter

from stripemeter.clocks import record_clock_time
from stripemeter.errors import WebhookPayloadError
from stripemeter.ops.metrics import OTHER_LABEL, REGISTRY

log = logging.getLogger("stripemeter.webhooks.receive")

NOTIFY_CHANNEL = "stripemeter_work"
METER_ERROR_TYPES = frozenset(
    {"billing.meter.error_report_triggered", "v1.billing.meter.error_report_triggered"}
)
CLOCK_READY_TYPE = "test_helpers.test_clock.ready"
HANDLED_TYPES = (
    frozenset({"invoice.created", "invoice.finalized", CLOCK_READY_TYPE}) | METER_ERROR_TYPES
)

Action = Literal["flush", "reconcile", "meter_errors", "clock", "none"]
Status = Literal["pending", "done", "failed", "ignored"]

WEBHOOK_EVENTS = Counter(
    "stripemeter_stripe_webhook_events",
    "Stripe webhook events received, by type (the handled ones, else `other`) and outcome "
    "(queued, recorded, ignored, duplicate).",
    ["type", "outcome"],
    registry=REGISTRY,
)
METER_ERRORS = Counter(
    "stripemeter_stripe_meter_errors",
    "Meter event errors Stripe reported in billing.meter.error_report_triggered.",
    registry=REGISTRY,
)


@dataclass(frozen=True)
class MeterError:
    """One error code of a meter error report."""

    code: str
    count: int
    sample_message: str | None


@dataclass
class Classified:
    """What an event asks of the service, before the tenant lookup."""

    action: Action
    note: str | None = None
    stripe_customer_id: str | None = None
    invoice_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    meter_id: str | None = None
    validation_start: datetime | None = None
    validation_end: datetime | None = None
    meter_errors: list[MeterError] = field(default_factory=list)
    test_clock_id: str | None = None
    frozen_time: int | None = None


@dataclass(frozen=True)
class Recorded:
    """The event's row after `record` (the stored one on a duplicate)."""

    event_id: str
    type: str
    action: Action
    status: Status
    duplicate: bool
    note: str | None


def _instant(value: Any) -> datetime | None:
    """A unix timestamp (v1 events) or an RFC 3339 string (v2 events), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _obj(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    if not isinstance(data, dict):
        raise WebhookPayloadError("the event has no `data` object")
    obj = data.get("object", data)
    if not isinstance(obj, dict):
        raise WebhookPayloadError("the event's `data.object` is not an object")
    return obj


def _subscription_of(invoice: dict[str, Any]) -> str | None:
    parent = invoice.get("parent")
    if isinstance(parent, dict):
        details = parent.get("subscription_details")
        if isinstance(details, dict) and isinstance(details.get("subscription"), str):
            return str(details["subscription"])
    legacy = invoice.get("subscription")  # API versions before basil
    return legacy if isinstance(legacy, str) else None


def _customer_of(invoice: dict[str, Any]) -> str | None:
    customer = invoice.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def _meter_errors(event: dict[str, Any]) -> Classified:
    obj = _obj(event)
    related = event.get("related_object")
    meter = related.get("id") if isinstance(related, dict) else None
    meter = meter or obj.get("meter")
    reason = obj.get("reason")
    if not isinstance(reason, dict) or not isinstance(reason.get("error_types"), list):
        raise WebhookPayloadError("a meter error report without `reason.error_types`")
    errors = []
    for kind in reason["error_types"]:
        if not isinstance(kind, dict) or not isinstance(kind.get("code"), str):
            raise WebhookPayloadError("a meter error type without a `code`")
        count = kind.get("error_count", 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise WebhookPayloadError(f"meter error {kind['code']}: `error_count` is not a count")
        samples = kind.get("sample_errors")
        sample = None
        if isinstance(samples, list) and samples and isinstance(samples[0], dict):
            message = samples[0].get("error_message")
            sample = str(message)[:2000] if message is not None else None
        errors.append(MeterError(kind["code"][:200], count, sample))
    return Classified(
        "meter_errors",
        meter_id=str(meter) if isinstance(meter, str) else None,
        validation_start=_instant(obj.get("validation_start")),
        validation_end=_instant(obj.get("validation_end")),
        meter_errors=errors,
        note=str(obj["developer_message_summary"])[:2000]
        if obj.get("developer_message_summary")
        else None,
    )


def _clock_ready(event: dict[str, Any]) -> Classified:
    clock = _obj(event)
    clock_id, frozen = clock.get("id"), clock.get("frozen_time")
    if not isinstance(clock_id, str) or not clock_id:
        raise WebhookPayloadError(f"{CLOCK_READY_TYPE} without the clock's `id`")
    if not isinstance(frozen, int) or isinstance(frozen, bool) or frozen < 0:
        raise WebhookPayloadError(f"{CLOCK_READY_TYPE} without a unix `frozen_time`")
    return Classified("clock", test_clock_id=clock_id, frozen_time=frozen)


def classify(event: dict[str, Any]) -> Classified:
    """What the event asks of the service; WebhookPayloadError for a malformed handled one."""
    kind = event["type"]
    if kind in METER_ERROR_TYPES:
        return _meter_errors(event)
    if kind == CLOCK_READY_TYPE:
        return _clock_ready(event)
    if kind not in HANDLED_TYPES:
        return Classified("none", note=f"event type {kind} is not handled")
    invoice = _obj(event)
    found = Classified(
        "flush" if kind == "invoice.created" else "reconcile",
        stripe_customer_id=_customer_of(invoice),
        invoice_id=invoice.get("id") if isinstance(invoice.get("id"), str) else None,
        period_start=_instant(invoice.get("period_start")),
        period_end=_instant(invoice.get("period_end")),
    )
    if found.stripe_customer_id is None:
        raise WebhookPayloadError(f"{kind} without the invoice's `customer`")
    if _subscription_of(invoice) is None:
        found.action, found.note = "none", "not a subscription invoice"
    elif kind == "invoice.created" and invoice.get("status") != "draft":
        found.action, found.note = "none", f"invoice status is {invoice.get('status')}, not draft"
    return found


def _type_label(kind: str) -> str:
    return kind if kind in HANDLED_TYPES else OTHER_LABEL


def record(conn: psycopg.Connection, event: dict[str, Any]) -> Recorded:
    """Record the event and its work item in one transaction (module docstring); commits."""
    event_id, kind = str(event["id"]), str(event["type"])
    for name, value in (("id", event_id), ("type", kind)):
        if len(value) > 255:
            raise WebhookPayloadError(f"the event's {name!r} is over 255 characters")
    found = classify(event)
    tenant_id: str | None = None
    customer_ref: str | None = None
    with conn.transaction():
        if found.stripe_customer_id is not None and found.action != "none":
            row = conn.execute(
                "SELECT tenant_id, customer_ref FROM customer_bindings"
                " WHERE stripe_customer_id = %s",
                (found.stripe_customer_id,),
            ).fetchone()
            if row is None:
                found.action = "none"
                found.note = f"no tenant is bound to Stripe customer {found.stripe_customer_id}"
            else:
                tenant_id, customer_ref = row[0], str(row[1])
        status: Status = {"none": "ignored", "meter_errors": "done", "clock": "done"}.get(  # type: ignore[assignment]
            found.action, "pending"
        )
        inserted = conn.execute(
            "INSERT INTO stripe_webhook_events (event_id, type, action, status, livemode,"
            " stripe_created, tenant_id, customer_ref, stripe_customer_id, invoice_id,"
            " period_start, period_end, note, processed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " CASE WHEN %s = 'pending' THEN NULL ELSE clock_timestamp() END)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (
                event_id,
                kind,
                found.action,
                status,
                bool(event.get("livemode", False)),
                _instant(event.get("created")),
                tenant_id,
                customer_ref,
                found.stripe_customer_id,
                found.invoice_id,
                found.period_start,
                found.period_end,
                found.note,
                status,
            ),
        ).fetchone()
        if inserted is None:
            stored = conn.execute(
                "SELECT type, action, status, note FROM stripe_webhook_events WHERE event_id = %s",
                (event_id,),
            ).fetchone()
            assert stored is not None
            WEBHOOK_EVENTS.labels(type=_type_label(kind), outcome="duplicate").inc()
            return Recorded(event_id, stored[0], stored[1], stored[2], True, stored[3])
        if found.test_clock_id is not None and found.frozen_time is not None:
            moved = record_clock_time(conn, found.test_clock_id, found.frozen_time)
            log.info(
                "test clock %s ready at %d: %d customer(s) moved",
                found.test_clock_id,
                found.frozen_time,
                moved,
            )
        for error in found.meter_errors:
            conn.execute(
                "INSERT INTO meter_error_reports (event_id, meter_id, error_code, error_count,"
                " sample_message, validation_start, validation_end) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id, error_code) DO UPDATE"
                " SET error_count = meter_error_reports.error_count + EXCLUDED.error_count",
                (
                    event_id,
                    found.meter_id,
                    error.code,
                    error.count,
                    error.sample_message,
                    found.validation_start,
                    found.validation_end,
                ),
            )
        if status == "pending":
            conn.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, event_id))
    if found.meter_errors:
        log.warning(
            "Stripe reported meter errors for meter %s (event %s): %s",
            found.meter_id,
            event_id,
            ", ".join(f"{e.code} x{e.count}" for e in found.meter_errors),
        )
    outcome = {"pending": "queued", "done": "recorded"}.get(status, "ignored")
    WEBHOOK_EVENTS.labels(type=_type_label(kind), outcome=outcome).inc()
    METER_ERRORS.inc(sum(e.count for e in found.meter_errors))
    return Recorded(event_id, kind, found.action, status, False, found.note)


def meter_error_reports(
    conn: psycopg.Connection, tenant_id: str, limit: int
) -> list[dict[str, Any]]:
    """The latest stored errors of the tenant's meters (those its mappings resolved to or
    its pushes went to), newest first. Errors of a meter no tenant uses are on /metrics
    and in the log only."""
    rows = conn.execute(
        "SELECT event_id, meter_id, error_code, error_count, sample_message, validation_start,"
        " validation_end, received_at FROM meter_error_reports WHERE meter_id IN ("
        " SELECT meter_id FROM price_mappings WHERE tenant_id = %(t)s AND meter_id IS NOT NULL"
        " UNION SELECT DISTINCT meter_id FROM meter_pushes WHERE tenant_id = %(t)s)"
        " ORDER BY received_at DESC, event_id, error_code LIMIT %(limit)s",
        {"t": tenant_id, "limit": limit},
    ).fetchall()
    conn.commit()
    keys = (
        "eventId",
        "meterId",
        "errorCode",
        "errorCount",
        "sampleMessage",
        "validationStart",
        "validationEnd",
        "receivedAt",
    )
    return [dict(zip(keys, row, strict=True)) for row in rows]
