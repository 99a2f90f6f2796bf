"""Checks on ingest input, with errors that name the field and say what is wrong.

`parse_batch` handles the batch level (body shape, size): a problem there refuses the
whole request. `validate_event` handles one event: a problem there rejects only that
event, reported by its index. Neither touches the database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from stripemeter.errors import InputError
from stripemeter.jsonio import EXACT, meta_to_json
from stripemeter.tenants import check_tenant_id

if TYPE_CHECKING:
    from stripemeter.config import Settings

# Python patterns are anchored with \A...\Z and used with fullmatch: `$` would also match
# before a trailing newline, so "calls\n" would pass.
# The metric rule, defined once: 1-128 letters, digits and `_ . : -`.
METRIC_CHARS = r"[A-Za-z0-9_.:-]{1,128}"
METRIC_TEXT = re.compile(rf"\A{METRIC_CHARS}\Z")
# The same rules for pydantic (`Query(pattern=...)`) and the OpenAPI schema. Those engines
# (Rust's regex crate, ECMA-262) read `$` as the end of the text, never "before a final
# newline", and neither knows `\Z`; tests prove a trailing newline is refused there too.
METRIC_PATTERN = f"^{METRIC_CHARS}$"
# Control characters, as the inside of a character class (PostgreSQL text cannot hold
# NUL at all); PRINTABLE_PATTERN is text without any.
CONTROL_CHARS = r"\x00-\x1f\x7f"
PRINTABLE_PATTERN = f"^[^{CONTROL_CHARS}]+$"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Stripe refuses a meter event value with more than 15 digits
# (`meter_event_value_too_many_digits`), and a bucket it refuses blocks that customer's
# pushes: ingest refuses any quantity Stripe could never be sent. The one bound.
STRIPE_MAX_DIGITS = 15
MAX_QUANTITY = Decimal(10) ** STRIPE_MAX_DIGITS
MAX_QUANTITY_TEXT = f"1e{STRIPE_MAX_DIGITS}"
MAX_DECIMALS = 6
MAX_KEY_CHARS = 255
MAX_HEADER_KEY_CHARS = 200  # leaves room for the prefix and ":<index>" of derived keys
# Keys stripemeter derives (from the Idempotency-Key header or from the event's content)
# start with this prefix, and a body `idempotencyKey` may not: the two can never collide.
DERIVED_KEY_PREFIX = "~"
EVENT_FIELDS = frozenset(
    {
        "tenantId",
        "metric",
        "customerRef",
        "quantity",
        "ts",
        "idempotencyKey",
        "resourceId",
        "source",
        "meta",
    }
)


@dataclass(slots=True)
class ValidEvent:
    """An event that passed every check, in storage types; never changed once built.

    Not `frozen`: a frozen dataclass sets each field through `object.__setattr__`, which
    made building one 2.5 µs instead of 0.55 µs, a fifth of a 100-event request's
    validation (measured on the ingest hot path).
    """

    tenant_id: str
    metric: str
    customer_ref: str
    quantity: Decimal
    ts: datetime
    idempotency_key: str | None
    resource_id: str | None
    source: str | None
    meta_json: str | None
    # The `meta` object as parsed (exact numbers), for the content key; `meta_json` is
    # what is stored. Not part of equality: it is `meta_json`'s source.
    meta: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def parse_batch(body: object, max_batch: int) -> list[Any]:
    """The `events` list of an ingest body, or `InputError` for a batch-level problem."""
    if not isinstance(body, dict):
        raise InputError(
            "invalid_body",
            f'body must be a JSON object like {{"events": [...]}}, got {_kind(body)}',
            None,
        )
    unknown = sorted(set(body) - {"events"})
    if unknown:
        raise InputError("unknown_field", f"unknown field {unknown[0]!r} in body", unknown[0])
    if "events" not in body:
        raise InputError("missing_field", "events is required", "events")
    events = body["events"]
    if not isinstance(events, list):
        raise InputError("invalid_type", f"events must be an array, got {_kind(events)}", "events")
    if not events:
        raise InputError("empty_batch", "events must contain at least one event", "events")
    if len(events) > max_batch:
        raise InputError(
            "batch_too_large",
            f"events has {len(events)} items; at most {max_batch} per request (MAX_INGEST_BATCH)",
            "events",
        )
    return events


def check_header_key(value: str) -> str:
    """The request's `Idempotency-Key` header, or `InputError` if unusable."""
    if not 1 <= len(value) <= MAX_HEADER_KEY_CHARS or not value.isprintable():
        raise InputError(
            "invalid_header",
            f"Idempotency-Key header must be 1-{MAX_HEADER_KEY_CHARS} printable characters",
            "Idempotency-Key",
        )
    return value


def _required_text(event: dict[str, Any], name: str) -> str:
    if name not in event or event[name] is None:
        raise InputError("missing_field", f"{name} is required", name)
    value = event[name]
    if not isinstance(value, str):
        raise InputError("invalid_type", f"{name} must be a string, got {_kind(value)}", name)
    return value


def _optional_text(event: dict[str, Any], name: str, max_chars: int) -> str | None:
    value = event.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputError("invalid_type", f"{name} must be a string, got {_kind(value)}", name)
    if not 1 <= len(value) <= max_chars or not value.isprintable():
        raise InputError(
            "invalid_value", f"{name} must be 1-{max_chars} printable characters", name
        )
    return value


def _quantity_too_large(raw: int | Decimal) -> InputError:
    shown = str(raw) if len(str(raw)) <= 40 else f"{str(raw)[:20]}... ({len(str(raw))} chars)"
    return InputError(
        "invalid_value",
        f"quantity must be less than {MAX_QUANTITY_TEXT} ({MAX_QUANTITY}): Stripe meter event "
        f"values have at most {STRIPE_MAX_DIGITS} digits; got {shown}",
        "quantity",
    )


def _quantity(event: dict[str, Any]) -> Decimal:
    raw = event.get("quantity")
    if raw is None:
        raise InputError("missing_field", "quantity is required", "quantity")
    kind = type(raw)
    if kind is int:  # the common case: whole units (bool is refused below, not here)
        if raw < 0:
            raise InputError("invalid_value", f"quantity must be >= 0, got {raw}", "quantity")
        if raw >= MAX_QUANTITY:
            raise _quantity_too_large(raw)
        return Decimal(raw)
    if kind is not Decimal:
        raise InputError(
            "invalid_type", f"quantity must be a JSON number, got {_kind(raw)}", "quantity"
        )
    value: Decimal = raw
    if value < 0:
        raise InputError("invalid_value", f"quantity must be >= 0, got {raw}", "quantity")
    if value >= MAX_QUANTITY:
        raise _quantity_too_large(value)
    exponent = value.as_tuple().exponent
    # 1.5000000 is written with 7 decimals but has 1: only normalize when in doubt.
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
        exponent = value.normalize(EXACT).as_tuple().exponent
        if isinstance(exponent, int) and exponent < -MAX_DECIMALS:
            raise InputError(
                "invalid_value",
                f"quantity must have at most {MAX_DECIMALS} decimal places, got {raw}",
                "quantity",
            )
    return Decimal(0) if value == 0 else value  # -0 is stored as 0


def _timestamp(event: dict[str, Any], now: datetime, max_skew_s: int) -> datetime:
    text = _required_text(event, "ts")
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(
            "invalid_value",
            f"ts must be an ISO-8601 timestamp with a timezone, got {text[:64]!r}",
            "ts",
        ) from None
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InputError(
            "invalid_value", f"ts must include a timezone (e.g. Z), got {text[:64]!r}", "ts"
        )
    if ts < EPOCH:
        raise InputError("invalid_value", f"ts must not be before 1970, got {text[:64]!r}", "ts")
    if ts > now + timedelta(seconds=max_skew_s):
        raise InputError(
            "future_timestamp",
            f"ts {text[:64]} is more than {max_skew_s} s in the future (MAX_FUTURE_SKEW_SECONDS)",
            "ts",
        )
    return ts


def validate_event(
    event: object,
    *,
    now: datetime,
    max_skew_s: int,
    max_meta_bytes: int,
    strict_tenant_uuid: bool = False,
) -> ValidEvent:
    """One event in storage types, or `InputError` naming the first bad field.

    `tenantId` follows `stripemeter.tenants` (UUIDs only when `strict_tenant_uuid`).
    """
    if not isinstance(event, dict):
        raise InputError("invalid_type", f"event must be a JSON object, got {_kind(event)}", None)
    if not event.keys() <= EVENT_FIELDS:
        unknown = sorted(event.keys() - EVENT_FIELDS)[0]
        raise InputError("unknown_field", f"unknown field {unknown!r}", unknown)
    tenant_id = check_tenant_id(_required_text(event, "tenantId"), strict_uuid=strict_tenant_uuid)
    metric = _required_text(event, "metric")
    if not METRIC_TEXT.fullmatch(metric):
        raise InputError(
            "invalid_value",
            "metric must be 1-128 characters of letters, digits and _ . : -",
            "metric",
        )
    customer_ref = _required_text(event, "customerRef")
    if not 1 <= len(customer_ref) <= 255 or not customer_ref.isprintable():
        raise InputError(
            "invalid_value", "customerRef must be 1-255 printable characters", "customerRef"
        )
    quantity = _quantity(event)
    ts = _timestamp(event, now, max_skew_s)
    key = _optional_text(event, "idempotencyKey", MAX_KEY_CHARS)
    if key is not None and key.startswith(DERIVED_KEY_PREFIX):
        raise InputError(
            "reserved_key_prefix",
            f"idempotencyKey must not start with {DERIVED_KEY_PREFIX!r}: that prefix is reserved"
            " for the keys stripemeter derives from the Idempotency-Key header or the event's"
            " content; choose a key that starts with another character",
            "idempotencyKey",
        )
    resource_id = _optional_text(event, "resourceId", 255)
    source = _optional_text(event, "source", 128)
    meta_json = None
    meta = event.get("meta")
    if meta is not None:
        if not isinstance(meta, dict):
            raise InputError("invalid_type", f"meta must be an object, got {_kind(meta)}", "meta")
        meta_json = meta_to_json(meta)
        try:
            size = len(meta_json.encode("utf-8"))
        except UnicodeEncodeError:
            raise InputError(
                "invalid_value", "meta contains an invalid Unicode character", "meta"
            ) from None
        if size > max_meta_bytes:
            raise InputError(
                "meta_too_large",
                f"meta is {size} bytes as JSON; the limit is {max_meta_bytes} "
                "(MAX_EVENT_META_BYTES)",
                "meta",
            )
        if "\\u0000" in meta_json:
            raise InputError("invalid_value", "meta must not contain NUL characters", "meta")
    return ValidEvent(
        tenant_id=tenant_id,
        metric=metric,
        customer_ref=customer_ref,
        quantity=quantity,
        ts=ts,
        idempotency_key=key,
        resource_id=resource_id,
        source=source,
        meta_json=meta_json,
        meta=meta,
    )


@dataclass(frozen=True, slots=True)
class EventRules:
    """The per-event limits that settings decide, built in one place so every path that
    validates events (the ingest API, its re-judging on test clocks, the backfill) holds
    events to the same rules."""

    max_skew_s: int
    max_meta_bytes: int
    strict_tenant_uuid: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> EventRules:
        """`MAX_FUTURE_SKEW_SECONDS`, `MAX_EVENT_META_BYTES`, `STRICT_TENANT_ID_UUID`."""
        return cls(
            max_skew_s=settings.MAX_FUTURE_SKEW_SECONDS,
            max_meta_bytes=settings.MAX_EVENT_META_BYTES,
            strict_tenant_uuid=settings.STRICT_TENANT_ID_UUID,
        )

    def validate(self, event: object, now: datetime) -> ValidEvent:
        """`validate_event` under these rules, `now` being the time the bound is taken from."""
        return validate_event(
            event,
            now=now,
            max_skew_s=self.max_skew_s,
            max_meta_bytes=self.max_meta_bytes,
            strict_tenant_uuid=self.strict_tenant_uuid,
        )
