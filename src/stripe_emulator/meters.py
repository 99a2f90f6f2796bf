"""Billing meters: create / retrieve / list / update display_name / deactivate / reactivate.

Meters are account-level: never deleted, not tied to test clocks (facts §2.6, §3.1).
"""

from __future__ import annotations

from stripe_emulator.errors import invalid
from stripe_emulator.lists import paginate
from stripe_emulator.params import EXPAND, PAGING, e, o, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, real_now

KIND = "billing meter"

CREATE = {
    "display_name": s(required=True),
    "event_name": s(required=True),
    "default_aggregation": o({"formula": e("sum", "count", "last", required=True)}, required=True),
    "customer_mapping": o(
        {"event_payload_key": s(required=True), "type": e("by_id", required=True)}
    ),
    "value_settings": o({"event_payload_key": s(required=True)}),
    "event_time_window": e("day", "hour"),
    "expand": EXPAND,
}


def meter_for_event(store: Store, event_name: str) -> Obj | None:
    """The meter (active or not) that owns `event_name`; event names are unique."""
    for meter in store.all("meters"):
        if meter["event_name"] == event_name:
            return meter
    return None


def create(ctx: Ctx) -> Obj:
    """POST /v1/billing/meters: `event_name` must not be used by another meter."""
    p = ctx.validate(CREATE)
    store = ctx.store
    if meter_for_event(store, p["event_name"]) is not None:
        # Code [inferred] facts §3.1: "An event name can be used by one meter only".
        raise invalid(
            f"A meter with event_name '{p['event_name']}' already exists.",
            param="event_name",
            code="resource_already_exists",
        )
    mapping = p.get("customer_mapping") or {}
    value = p.get("value_settings") or {}
    now = real_now()
    meter: Obj = {
        "id": store.new_id("mtr"),
        "object": "billing.meter",
        "created": now,
        "customer_mapping": {
            "event_payload_key": mapping.get("event_payload_key") or "stripe_customer_id",
            "type": "by_id",
        },
        "default_aggregation": {"formula": p["default_aggregation"]["formula"]},
        "display_name": p["display_name"],
        "event_name": p["event_name"],
        "event_time_window": p.get("event_time_window"),
        "livemode": False,
        "status": "active",
        "status_transitions": {"deactivated_at": None},
        "updated": now,
        "value_settings": {"event_payload_key": value.get("event_payload_key") or "value"},
    }
    return store.insert("meters", meter)


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/billing/meters/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("meters", ctx.args[0], KIND)


def update(ctx: Ctx) -> Obj:
    """POST /v1/billing/meters/{id}: only display_name may change."""
    p = ctx.validate({"display_name": s(), "expand": EXPAND})
    meter = ctx.store.get("meters", ctx.args[0], KIND)
    if p.get("display_name"):
        meter["display_name"] = p["display_name"]
        meter["updated"] = real_now()
    return meter


def list_(ctx: Ctx) -> Obj:
    """GET /v1/billing/meters (optional status filter)."""
    p = ctx.validate({**PAGING, "status": e("active", "inactive")})
    rows = list(ctx.store.all("meters"))
    if p.get("status"):
        rows = [r for r in rows if r["status"] == p["status"]]
    return paginate(rows, p, "/v1/billing/meters", kind=KIND)


def _set_status(ctx: Ctx, status: str) -> Obj:
    ctx.validate({"expand": EXPAND})
    meter = ctx.store.get("meters", ctx.args[0], KIND)
    if meter["status"] == status:
        raise invalid(f"The meter {meter['id']} is already {status}.", param="id")
    now = real_now()
    meter["status"] = status
    meter["status_transitions"]["deactivated_at"] = now if status == "inactive" else None
    meter["updated"] = now
    return meter


def deactivate(ctx: Ctx) -> Obj:
    """POST /v1/billing/meters/{id}/deactivate: no more events accepted."""
    return _set_status(ctx, "inactive")


def reactivate(ctx: Ctx) -> Obj:
    """POST /v1/billing/meters/{id}/reactivate."""
    return _set_status(ctx, "active")


def register(router: Router) -> None:
    """Mount meter routes."""
    router.add("POST", "/v1/billing/meters", create)
    router.add("GET", "/v1/billing/meters", list_)
    router.add("GET", "/v1/billing/meters/{id}", retrieve)
    router.add("POST", "/v1/billing/meters/{id}", update)
    router.add("POST", "/v1/billing/meters/{id}/deactivate", deactivate)
    router.add("POST", "/v1/billing/meters/{id}/reactivate", reactivate)
