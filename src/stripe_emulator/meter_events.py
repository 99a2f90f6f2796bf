"""Meter events, their adjustments (cancel) and event summaries (facts §3.2-§3.5).

Events are validated synchronously (Stripe validates some of these asynchronously and
reports them as meter error reports; the emulator refuses them at once with the error
report's code — [inferred] facts §3.2/§3.4/§9).
"""

from __future__ import annotations

import re
from typing import Any

from stripe_emulator.errors import invalid, invalid_integer, not_found
from stripe_emulator.lists import paginate
from stripe_emulator.meters import meter_for_event
from stripe_emulator.params import EXPAND, PAGING, e, i, m, o, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, random_token, real_now

DAY = 86400
PAST_LIMIT_S = 35 * DAY  # facts §3.2
FUTURE_LIMIT_S = 5 * 60  # facts §3.2
IDENTIFIER_WINDOW_S = DAY  # facts §3.2: unique over a rolling 24 h
CANCEL_WINDOW_S = DAY  # facts §3.5
MAX_WINDOWS = 10_000
_WHOLE = re.compile(r"^-?\d{1,15}$")

CREATE = {
    "event_name": s(required=True),
    "payload": m(required=True),
    "identifier": s(),
    "timestamp": i(),
    "expand": EXPAND,
}
ADJUST = {
    "event_name": s(required=True),
    "type": e("cancel", required=True),
    "cancel": o({"identifier": s()}),
    "expand": EXPAND,
}
SUMMARIES = {
    **PAGING,
    "customer": s(required=True),
    "start_time": i(required=True),
    "end_time": i(required=True),
    "value_grouping_window": e("hour", "day"),
}


def _check_timestamp(store: Store, ts: int, customer: Obj) -> None:
    now = real_now()
    if ts < now - PAST_LIMIT_S:
        raise invalid(
            "The event timestamp is too far in the past: meter events must be within the "
            f"past 35 days (timestamp {ts}).",
            param="timestamp",
            code="timestamp_too_far_in_past",
        )
    clock = store.clock_of(customer)
    if clock is not None:
        # [inferred] facts §3.4/§8: for a clock customer the future bound is the clock's
        # frozen_time (not real time + 5 min); the 35-day past bound stays on real time.
        if ts <= clock["frozen_time"]:
            return
        raise invalid(
            "The event timestamp cannot be in future: customer "
            f"{customer['id']} is on test clock {clock['id']} frozen at "
            f"{clock['frozen_time']}, and the timestamp is {ts}.",
            param="timestamp",
            code="timestamp_in_future",
        )
    if ts > now + FUTURE_LIMIT_S:
        raise invalid(
            "The event timestamp cannot be in future: it may be at most 5 minutes ahead of "
            f"the current time (timestamp {ts}).",
            param="timestamp",
            code="timestamp_in_future",
        )


def create(ctx: Ctx) -> Obj:
    """POST /v1/billing/meter_events."""
    return record(ctx.store, ctx.validate(CREATE))


def record(store: Store, p: dict[str, Any]) -> Obj:
    """Validate one meter event (`event_name`, `payload`, optional `identifier` and Unix
    `timestamp`) and store it; raises the StripeError Stripe answers (v1) or reports
    (the v2 stream, `stripe_emulator.meter_event_stream`).

    One store and one identifier window for both APIs, so an identifier sent on v1 and
    again on the stream (or twice on either) counts once, and summaries see both.
    """
    meter = meter_for_event(store, p["event_name"])
    if meter is None:
        raise invalid(
            f"No active meter was found for event_name '{p['event_name']}'.",
            param="event_name",
            code="no_meter",
        )
    if meter["status"] != "active":
        raise invalid(
            f"The meter {meter['id']} for event_name '{p['event_name']}' is deactivated and "
            "does not accept events.",
            param="event_name",
            code="archived_meter",
        )
    payload: dict[str, str] = p["payload"]
    cus_key = meter["customer_mapping"]["event_payload_key"]
    val_key = meter["value_settings"]["event_payload_key"]
    cus_id = payload.get(cus_key)
    if not cus_id:
        raise invalid(
            f"The payload must contain the customer key '{cus_key}'.",
            param=f"payload[{cus_key}]",
            code="meter_event_no_customer_defined",
        )
    customer = store.by_type["customers"].get(cus_id)
    if customer is None:
        raise invalid(
            f"No such customer: '{cus_id}'",
            param=f"payload[{cus_key}]",
            code="meter_event_customer_not_found",
        )
    raw_value = payload.get(val_key)
    if raw_value is None:
        if meter["default_aggregation"]["formula"] != "count":
            raise invalid(
                f"The payload must contain the value key '{val_key}'.",
                param=f"payload[{val_key}]",
                code="parameter_missing",
            )
        raw_value = "1"
    if not _WHOLE.match(raw_value):
        raise invalid(
            f"Meter event values must be whole numbers; got '{raw_value}'.",
            param=f"payload[{val_key}]",
            code="meter_event_invalid_value",
        )
    ts = p.get("timestamp")
    if ts is None:
        ts = store.now_for(customer)  # [inferred] facts §3.4: default "now" follows the clock
    _check_timestamp(store, ts, customer)
    identifier = p.get("identifier") or f"mevt_{random_token(20)}"
    now = real_now()
    previous = store.identifiers.get(identifier)
    if previous is not None and now - previous["created"] < IDENTIFIER_WINDOW_S:
        # Code and wording [inferred] facts §3.2/§9; the writer relies on this code.
        raise invalid(
            f"An event with identifier '{identifier}' already exists; identifiers must be "
            "unique within 24 hours.",
            param="identifier",
            code="resource_already_exists",
        )
    event: Obj = {
        "object": "billing.meter_event",
        "created": now,
        "event_name": p["event_name"],
        "identifier": identifier,
        "livemode": False,
        "payload": payload,
        "timestamp": ts,
        "_meter": meter["id"],
        "_customer": cus_id,
        "_value": int(raw_value),
        "_cancelled": False,
    }
    store.insert("meter_events", event, key=f"{identifier}#{now}#{len(store.identifiers)}")
    store.identifiers[identifier] = event
    store.usage.setdefault((meter["id"], cus_id), []).append(event)
    return event


def aggregate(store: Store, meter: Obj, cus_id: str, start: int, end: int) -> int:
    """The meter's formula over the customer's live events with `start <= ts < end`."""
    events = [
        ev
        for ev in store.usage.get((meter["id"], cus_id), ())
        if not ev["_cancelled"] and start <= ev["timestamp"] < end
    ]
    window = meter.get("event_time_window")
    if window:
        size = 3600 if window == "hour" else DAY
        latest: dict[int, Obj] = {}
        for ev in events:  # newer (timestamp, arrival) overwrites older in the same window
            slot = ev["timestamp"] // size
            cur = latest.get(slot)
            if cur is None or (ev["timestamp"], ev["_seq"]) >= (cur["timestamp"], cur["_seq"]):
                latest[slot] = ev
        events = list(latest.values())
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return len(events)
    if formula == "last":
        if not events:
            return 0
        return int(max(events, key=lambda ev: (ev["timestamp"], ev["_seq"]))["_value"])
    return sum(int(ev["_value"]) for ev in events)


def adjust(ctx: Ctx) -> Obj:
    """POST /v1/billing/meter_event_adjustments: cancel one event by identifier (24 h)."""
    p = ctx.validate(ADJUST)
    store = ctx.store
    identifier = (p.get("cancel") or {}).get("identifier")
    if not identifier:
        raise invalid(
            "Missing required param: cancel[identifier].",
            param="cancel[identifier]",
            code="parameter_missing",
        )
    event = store.identifiers.get(identifier)
    if event is None or event["event_name"] != p["event_name"]:
        # [inferred] facts §3.5: Stripe reports unknown identifiers asynchronously.
        raise invalid(
            f"No meter event with identifier '{identifier}' for event_name '{p['event_name']}'.",
            param="cancel[identifier]",
            code="resource_missing",
        )
    if real_now() - event["created"] >= CANCEL_WINDOW_S:
        raise invalid(
            "Only meter events received within the last 24 hours can be cancelled.",
            param="cancel[identifier]",
        )
    event["_cancelled"] = True
    adjustment: Obj = {
        "id": store.new_id("mtradj"),
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "event_name": p["event_name"],
        "livemode": False,
        "status": "pending",
        "type": "cancel",
    }
    store.insert("meter_event_adjustments", adjustment)
    out = dict(adjustment)
    out.pop("id")
    return out


def _aligned(value: int, size: int, param: str, what: str) -> None:
    if value % size:
        raise invalid_integer(param, f"{param} must be aligned to {what} boundaries ({value}).")


def summaries(ctx: Ctx) -> Obj:
    """GET /v1/billing/meters/{id}/event_summaries (minute-aligned window, facts §3.3)."""
    p = ctx.validate(SUMMARIES)
    store = ctx.store
    meter = store.get("meters", ctx.args[0], "billing meter")
    if p["customer"] not in store.by_type["customers"]:
        raise not_found("customer", p["customer"], param="customer")
    start, end = p["start_time"], p["end_time"]
    _aligned(start, 60, "start_time", "minute")
    _aligned(end, 60, "end_time", "minute")
    if end <= start:
        raise invalid_integer("end_time", "end_time must be after start_time.")
    grouping = p.get("value_grouping_window")
    size = {"hour": 3600, "day": DAY}.get(grouping or "", 0)
    if size:
        what = "hour" if grouping == "hour" else "day (UTC midnight)"
        _aligned(start, size, "start_time", what)
        _aligned(end, size, "end_time", what)
    if size and (end - start) // size > MAX_WINDOWS:
        # [inferred] facts §3.3 names no bound; ours keeps one answer small.
        raise invalid_integer(
            "end_time",
            f"The range holds more than {MAX_WINDOWS} {grouping} windows; ask for a shorter range.",
        )
    windows = [(w, w + size) for w in range(start, end, size)] if size else [(start, end)]
    rows: list[Obj] = [
        {
            "id": f"mtrusg_{meter['id'][4:]}_{w_start}",
            "object": "billing.meter_event_summary",
            "aggregated_value": float(aggregate(store, meter, p["customer"], w_start, w_end)),
            "end_time": w_end,
            "livemode": False,
            "meter": meter["id"],
            "start_time": w_start,
        }
        for w_start, w_end in reversed(windows)  # [inferred] newest window first, like lists
    ]
    url = f"/v1/billing/meters/{meter['id']}/event_summaries"
    return paginate(rows, p, url, kind="meter event summary", presorted=True)


def register(router: Router) -> None:
    """Mount meter event, adjustment and summary routes."""
    router.add("POST", "/v1/billing/meter_events", create)
    router.add("POST", "/v1/billing/meter_event_adjustments", adjust)
    router.add("GET", "/v1/billing/meters/{id}/event_summaries", summaries)
