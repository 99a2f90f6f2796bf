"""Validated events built directly, for tests that drive the ledger without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from stripemeter.ingest.validation import ValidEvent

FIXED_TS = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def valid_event(
    tenant: str, key: str, customer: str = "cus_1", quantity: int = 1, ts: datetime = FIXED_TS
) -> ValidEvent:
    """An `api_calls` event of `tenant` keyed `key`, by default at a fixed time."""
    return ValidEvent(
        tenant_id=tenant,
        metric="api_calls",
        customer_ref=customer,
        quantity=Decimal(quantity),
        ts=ts,
        idempotency_key=key,
        resource_id=None,
        source=None,
        meta_json=None,
    )
