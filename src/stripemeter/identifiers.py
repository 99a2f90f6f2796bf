"""Deterministic names for what the writer sends to Stripe.

A meter event's `identifier` is derived from what it means — (tenant, metric, meter,
customer, hour bucket, the cumulative value Stripe will hold for that bucket after the
push) — so a retry after a crash, in this or another process, sends the same
identifier and Stripe refuses the duplicate instead of counting it twice. The next
real change has another cumulative value, hence another identifier.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from stripemeter.jsonio import EXACT

IDENTIFIER_PREFIX = "smw_"
IDEMPOTENCY_PREFIX = "smk_"
_DIGEST_CHARS = 40


def _digest(*parts: str) -> str:
    joined = "\x1f".join(parts).encode("utf-8")
    return hashlib.sha256(joined).hexdigest()[:_DIGEST_CHARS]


def meter_event_identifier(
    tenant_id: UUID,
    metric: str,
    event_name: str,
    customer_ref: str,
    hour_start: datetime,
    cumulative: Decimal | int,
    push_number: int | None = None,
) -> str:
    """The meter event identifier for one push of one bucket.

    `cumulative` is the whole-unit value Stripe holds for the bucket after this push
    (sum mappings: it only grows, so it alone makes the identifier unique).
    `push_number` is given for max/last mappings, whose values may repeat.
    """
    parts = [
        str(tenant_id),
        metric,
        event_name,
        customer_ref,
        str(int(hour_start.timestamp())),
        format(Decimal(cumulative).normalize(EXACT), "f"),
    ]
    if push_number is not None:
        parts.append(f"#{push_number}")
    return IDENTIFIER_PREFIX + _digest(*parts)


def idempotency_key(identifier: str, timestamp: int, value: int, attempt_tag: str = "") -> str:
    """The Idempotency-Key of the meter-event POST carrying `identifier`.

    It covers the request's parameters, so the same key never meets different
    parameters (which Stripe refuses), and `attempt_tag` gives a fresh key after a
    5xx whose answer Stripe may have stored and would replay forever.
    """
    return IDEMPOTENCY_PREFIX + _digest(identifier, str(timestamp), str(value), attempt_tag)
