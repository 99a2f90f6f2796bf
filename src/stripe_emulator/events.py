"""Stripe `event` objects: what happened, recorded for `GET /v1/events` and webhooks.

Resource modules call `record` at the moment Stripe would emit the event; delivery to
registered webhook endpoints lives in `webhooks`.
"""

from __future__ import annotations

from typing import Any

from stripe_emulator.store import Obj, Store, public


def record(
    store: Store,
    type_: str,
    obj: Obj,
    at: int,
    previous_attributes: dict[str, Any] | None = None,
) -> Obj:
    """Store one event of `type_` about `obj` (a snapshot of its public form) at time `at`."""
    data: dict[str, Any] = {"object": public(obj)}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    event: Obj = {
        "id": store.new_id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": at,
        "data": data,
        "livemode": False,
        "pending_webhooks": 0,
        "request": {"id": None, "idempotency_key": None},
        "type": type_,
    }
    return store.insert("events", event)
