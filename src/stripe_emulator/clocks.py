"""Test clocks: create / retrieve / list / delete (cascading) / advance (facts §2).

Advancing is asynchronous: the clock reports `advancing` for `advance_delay_s` of real
time, then the billing engine replays everything due up to the target and the clock
becomes `ready` (see billing.tick).
"""

from __future__ import annotations

import time

from stripe_emulator.errors import StripeError, invalid, invalid_integer
from stripe_emulator.lists import paginate
from stripe_emulator.params import EXPAND, PAGING, i, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, real_now
from stripe_emulator.timeutil import add_interval, interval_seconds

KIND = "test_clock"
MAX_CUSTOMERS = 3  # [inferred] facts §2.5: three customers per clock
MAX_FROZEN_TIME = 32_503_680_000  # year 3000: keeps calendar arithmetic in range
DELETES_AFTER_S = 7 * 86400  # [inferred] facts §2.2: doc examples show created + 7 days

CREATE = {"frozen_time": i(required=True), "name": s(), "customer": s(), "expand": EXPAND}
ADVANCE = {"frozen_time": i(required=True), "expand": EXPAND}


def check_room(store: Store, clock: Obj, param: str) -> None:
    """Refuse a fourth customer on a clock ([inferred] facts §2.5; code is ours)."""
    on_clock = sum(1 for c in store.all("customers") if c.get("test_clock") == clock["id"])
    if on_clock >= MAX_CUSTOMERS:
        raise invalid(
            f"The test clock {clock['id']} already has the maximum number of customers "
            f"({MAX_CUSTOMERS}) attached.",
            param=param,
            code="test_clock_customer_limit",
        )


def _check_range(frozen_time: int) -> None:
    if not 0 <= frozen_time <= MAX_FROZEN_TIME:
        raise invalid_integer(
            "frozen_time", f"frozen_time must be a Unix timestamp between 0 and {MAX_FROZEN_TIME}."
        )


def create(ctx: Ctx) -> Obj:
    """POST /v1/test_helpers/test_clocks — `status`/`present` are unknown parameters."""
    p = ctx.validate(CREATE)
    store = ctx.store
    _check_range(p["frozen_time"])
    customer = None
    if p.get("customer"):
        customer = store.get("customers", p["customer"], "customer", param="customer")
        if customer.get("test_clock"):
            raise invalid(
                f"Customer {customer['id']} is already attached to a test clock.",
                param="customer",
            )
    now = real_now()
    clock: Obj = {
        "id": store.new_id("clock"),
        "object": "test_helpers.test_clock",
        "created": now,
        "deletes_after": now + DELETES_AFTER_S,
        "frozen_time": p["frozen_time"],
        "livemode": False,
        "name": p.get("name"),
        "status": "ready",
        "status_details": {},
    }
    store.insert("test_clocks", clock)
    if customer is not None:
        # Attaching at creation (facts §2.2, dahlia): one customer, within the limit of 3.
        customer["test_clock"] = clock["id"]
    return clock


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/test_helpers/test_clocks/{id}."""
    ctx.validate({"expand": EXPAND})
    return ctx.store.get("test_clocks", ctx.args[0], KIND)


def list_(ctx: Ctx) -> Obj:
    """GET /v1/test_helpers/test_clocks."""
    p = ctx.validate(PAGING)
    return paginate(ctx.store.all("test_clocks"), p, "/v1/test_helpers/test_clocks", kind=KIND)


def delete(ctx: Ctx) -> Obj:
    """DELETE /v1/test_helpers/test_clocks/{id}: the clock and every object tied to it."""
    ctx.validate({})
    store = ctx.store
    clock = store.get("test_clocks", ctx.args[0], KIND)
    customers = [c["id"] for c in store.all("customers") if c.get("test_clock") == clock["id"]]
    for cus_id in customers:
        delete_customer_tree(store, cus_id)
    store.remove("test_clocks", clock["id"])
    return {"id": clock["id"], "object": "test_helpers.test_clock", "deleted": True}


def delete_customer_tree(store: Store, cus_id: str) -> None:
    """Remove a customer with its subscriptions, items, invoices and payment methods."""
    for sub in [x for x in store.all("subscriptions") if x["customer"] == cus_id]:
        for item in sub["items"]["data"]:
            store.remove("subscription_items", item["id"])
        store.remove("subscriptions", sub["id"])
    for inv in [v for v in store.all("invoices") if v["customer"] == cus_id]:
        store.remove("invoices", inv["id"])
    for pm in [m for m in store.all("payment_methods") if m["customer"] == cus_id]:
        store.remove("payment_methods", pm["id"])
    store.remove("customers", cus_id)


def advance_limit(store: Store, clock: Obj) -> tuple[int, str]:
    """Latest allowed target: two intervals of the shortest subscription, else two years."""
    shortest: tuple[int, str, int] | None = None
    cus_ids = {c["id"] for c in store.all("customers") if c.get("test_clock") == clock["id"]}
    for sub in store.all("subscriptions"):
        if sub["customer"] not in cus_ids or sub["status"] in ("canceled", "incomplete_expired"):
            continue
        for item in sub["items"]["data"]:
            rec = item["price"]["recurring"]
            size = interval_seconds(rec["interval"], rec["interval_count"])
            if shortest is None or size < shortest[0]:
                shortest = (size, rec["interval"], rec["interval_count"])
    if shortest is None:
        return add_interval(clock["frozen_time"], "year", 2), "two years"
    _, interval, count = shortest
    label = f"two intervals of the shortest subscription ({count} {interval})"
    return add_interval(clock["frozen_time"], interval, 2 * count), label


def advance(ctx: Ctx) -> Obj:
    """POST /v1/test_helpers/test_clocks/{id}/advance: forward only, capped (facts §2.4)."""
    p = ctx.validate(ADVANCE)
    store = ctx.store
    clock = store.get("test_clocks", ctx.args[0], KIND)
    if clock["status"] == "advancing":
        # [inferred] facts §2.3: advancing an advancing clock is refused.
        raise StripeError(
            400,
            f"Test clock {clock['id']} is currently advancing; wait until its status is ready.",
            code="status_transition_invalid",
        )
    target = p["frozen_time"]
    _check_range(target)
    if target <= clock["frozen_time"]:
        raise invalid_integer(
            "frozen_time",
            "The frozen_time must be after the test clock's current frozen_time "
            f"({clock['frozen_time']}); test clocks only move forward.",
        )
    limit, label = advance_limit(store, clock)
    if target > limit:
        # Wording and code [inferred] facts §2.4/§9.
        raise invalid_integer(
            "frozen_time",
            f"Cannot advance the test clock more than {label} at a time: the latest allowed "
            f"frozen_time is {limit}.",
        )
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": target}}
    clock["_target"] = target
    clock["_ready_at"] = time.monotonic() + store.advance_delay_s
    return clock


def register(router: Router) -> None:
    """Mount the test clock routes."""
    base = "/v1/test_helpers/test_clocks"
    router.add("POST", base, create)
    router.add("GET", base, list_)
    router.add("GET", base + "/{id}", retrieve)
    router.add("DELETE", base + "/{id}", delete)
    router.add("POST", base + "/{id}/advance", advance)
