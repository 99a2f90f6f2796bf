"""The billing engine: period rollovers, renewal invoices, finalization and payment.

It runs lazily: before every request, `tick` completes clock advances whose real-time
delay has passed (replaying everything due up to the target frozen_time) and brings
subscriptions of customers without a clock up to the wall clock. All times inside the
engine are the customer's time (clock time under a test clock).

Rules (facts §2.7, §3.7, §5.5, §6.2): at each period end items roll over and a
`subscription_cycle` draft bills each metered item its meter's aggregate over
`[period start, period end)`; one hour (of customer time) later it is finalized (usage
refreshed, as during Stripe's grace period), then charged to the default payment method
(`paid`), or stays `open` with the subscription `past_due`.
"""

from __future__ import annotations

import time
from typing import Any

from stripe_emulator.errors import StripeError, emulator_unsupported
from stripe_emulator.events import record
from stripe_emulator.invoice_builder import (
    build_lines,
    is_metered,
    make_line,
    new_invoice,
    set_lines,
    usage,
)
from stripe_emulator.invoice_items import claim_pending
from stripe_emulator.store import Obj, Store, public
from stripe_emulator.timeutil import add_interval

INCOMPLETE_EXPIRY_S = 23 * 3600  # facts §5.2
FINALIZE_DELAY_S = 3600  # facts §2.7: auto-advanced drafts finalize ~1 h after creation


def period_bounds(sub: Obj, index: int) -> tuple[int, int]:
    """Start and end of the subscription's `index`-th period, from its anchor."""
    if index < 0:
        start, end = sub["_stub"]  # a trial, or the stub before billing_cycle_anchor
        return int(start), int(end)
    anchor, interval, count = sub["_anchor"], sub["_interval"], sub["_count"]
    return add_interval(anchor, interval, index * count), add_interval(
        anchor, interval, (index + 1) * count
    )


def finalize(store: Store, inv: Obj, at: int) -> None:
    """draft -> open: number, finalized_at; nothing left to collect means paid at once."""
    cus = store.by_type["customers"].get(inv["customer"])
    if cus is not None:
        inv["number"] = f"{cus['invoice_prefix']}-{cus['next_invoice_sequence']:04d}"
        cus["next_invoice_sequence"] += 1
    inv["status"] = "open"
    inv["automatically_finalizes_at"] = None
    inv["effective_at"] = at
    _apply_balance(inv, cus)
    inv["status_transitions"]["finalized_at"] = at
    if inv["collection_method"] == "send_invoice":
        sub = store.by_type["subscriptions"].get(inv.get("_subscription", ""))
        days = (sub or {}).get("days_until_due") or 30
        inv["due_date"] = at + days * 86400
    record(store, "invoice.finalized", inv, at)
    if inv["amount_due"] == 0:
        mark_paid(store, inv, at)


def _apply_balance(inv: Obj, cus: Obj | None) -> None:
    """The customer's credit balance (negative, e.g. from a credit note's `credit_amount`)
    reduces the amount due at finalization (SDK: "automatically applied to their next
    invoice when it's finalized"); what is left stays on the customer."""
    balance = int(cus.get("balance") or 0) if cus is not None else 0
    inv["starting_balance"] = balance
    applied = max(balance, -inv["amount_due"]) if balance < 0 else 0
    inv["amount_due"] += applied
    inv["amount_remaining"] = inv["amount_due"] - inv["amount_paid"]
    inv["ending_balance"] = balance - applied
    if cus is not None and applied:
        cus["balance"] = balance - applied


def created(store: Store, inv: Obj, at: int) -> None:
    """Store a new invoice and emit `invoice.created`."""
    store.insert("invoices", inv)
    record(store, "invoice.created", inv, at)


def snapshot(sub: Obj) -> Obj:
    """The subscription's public form now, to diff against after a change."""
    return public(sub)


def sub_changed(store: Store, sub: Obj, before: Obj, at: int) -> None:
    """Emit `customer.subscription.updated` (with `previous_attributes`) or `.deleted`."""
    after = public(sub)
    prev = {k: v for k, v in before.items() if after.get(k) != v}
    if not prev:
        return
    if after["status"] == "canceled" and before["status"] != "canceled":
        record(store, "customer.subscription.deleted", sub, at)
    else:
        record(store, "customer.subscription.updated", sub, at, prev)


def mark_paid(store: Store, inv: Obj, at: int) -> None:
    """open -> paid for the full amount due."""
    inv["status"] = "paid"
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["status_transitions"]["paid_at"] = at
    inv["next_payment_attempt"] = None
    record(store, "invoice.paid", inv, at)


def payment_method_for(store: Store, inv: Obj) -> Obj | None:
    """Invoice default PM, else the subscription's, else the customer's (facts §2.7)."""
    candidates = [inv.get("default_payment_method")]
    sub = store.by_type["subscriptions"].get(inv.get("_subscription", ""))
    if sub is not None:
        candidates.append(sub.get("default_payment_method"))
    cus = store.by_type["customers"].get(inv["customer"])
    if cus is not None:
        candidates.append(cus["invoice_settings"]["default_payment_method"])
    for pm_id in candidates:
        if pm_id:
            pm = store.by_type["payment_methods"].get(pm_id)
            if pm is not None:
                return pm
    return None


def charge(store: Store, inv: Obj, at: int, pm: Obj | None = None) -> StripeError | None:
    """Try to collect an open invoice; None on success, else the decline to report."""
    if inv["amount_due"] == 0:
        mark_paid(store, inv, at)
        return None
    pm = pm or payment_method_for(store, inv)
    inv["attempted"] = True
    inv["attempt_count"] += 1
    sub = store.by_type["subscriptions"].get(inv.get("_subscription", ""))
    if pm is None or pm.get("_fails"):
        record(store, "invoice.payment_failed", inv, at)
        if (
            sub is not None
            and sub["status"] == "active"
            and inv["billing_reason"] != "subscription_create"
        ):
            sub["status"] = "past_due"
        if pm is None:
            return StripeError(
                400,
                "This customer has no attached payment source or default payment method.",
                code="resource_missing",
                param="payment_method",
            )
        return StripeError(
            402,
            "Your card was declined.",
            type_="card_error",
            code="card_declined",
            extra={"decline_code": "generic_decline", "payment_method": {"id": pm["id"]}},
        )
    mark_paid(store, inv, at)
    if sub is not None and sub["status"] in ("past_due", "incomplete"):
        open_left = any(
            v["status"] == "open" and v.get("_subscription") == sub["id"]
            for v in store.all("invoices")
        )
        if not open_left:
            sub["status"] = "active"
    return None


def _refreshusage(store: Store, sub: Obj, inv: Obj) -> None:
    """Recount metered lines at finalization (late usage within the grace hour counts)."""
    items = {item["id"]: item for item in sub["items"]["data"]}
    lines = []
    for line in inv["lines"]["data"]:
        item = items.get(line["_item"])
        if item is not None and is_metered(item):
            period = (line["period"]["start"], line["period"]["end"])
            qty = usage(store, item["price"], sub["customer"], *period)
            line = make_line(store, sub, item, inv["id"], qty, period) | {"id": line["id"]}
        lines.append(line)
    set_lines(inv, lines)


def _auto_finalize(store: Store, sub: Obj, inv: Obj, at: int) -> None:
    if inv["status"] != "draft":
        return
    _refreshusage(store, sub, inv)
    finalize(store, inv, at)
    if inv["status"] == "open" and inv["collection_method"] == "charge_automatically":
        charge(store, inv, at)


def check_cancel_at(
    sub: Obj, cancel_at: int, proration_behavior: str | None, licensed: bool
) -> None:
    """A mid-period `cancel_at` on licensed items would prorate a credit: unsupported."""
    if proration_behavior == "none":
        return
    k = sub["_k"]
    while period_bounds(sub, k)[1] < cancel_at:
        k += 1
    if licensed and period_bounds(sub, k)[1] != cancel_at:
        raise emulator_unsupported("cancel_at")


def _end_at(store: Store, sub: Obj, at: int) -> None:
    """`cancel_at` reached: the subscription ends; metered usage so far is invoiced."""
    start = period_bounds(sub, sub["_k"])[0]
    closed = (start, at)
    lines = [] if sub["_trial"] and sub["_k"] < 0 else build_lines(store, sub, "", closed, None)
    if lines:
        inv = new_invoice(store, sub, "subscription_cycle", at, closed)
        for line in lines:
            line["invoice"] = inv["id"]
        set_lines(inv, claim_pending(store, sub, inv["id"]) + lines)
        inv["automatically_finalizes_at"] = at + FINALIZE_DELAY_S
        created(store, inv, at)
        sub["latest_invoice"] = inv["id"]
        sub["_pending"].append(inv["id"])
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or at
    sub["ended_at"] = at
    sub["cancellation_details"]["reason"] = "cancellation_requested"


def _roll_period(store: Store, sub: Obj, at: int) -> None:
    closed = period_bounds(sub, sub["_k"])
    was_trial = sub["_trial"] and sub["_k"] < 0
    sub["_k"] += 1
    opened = period_bounds(sub, sub["_k"])
    for item in sub["items"]["data"]:
        item["current_period_start"], item["current_period_end"] = opened
    inv = new_invoice(store, sub, "subscription_cycle", at, closed)
    if was_trial:
        # trial over: usage during the trial is free; the first paid period opens now
        sub["status"] = "active"
        lines = build_lines(store, sub, inv["id"], None, opened)
    else:
        lines = build_lines(store, sub, inv["id"], closed, opened)
    # Pending invoice items come first (facts §6.3), then the subscription's lines.
    set_lines(inv, claim_pending(store, sub, inv["id"]) + lines)
    inv["automatically_finalizes_at"] = at + FINALIZE_DELAY_S
    created(store, inv, at)
    sub["latest_invoice"] = inv["id"]
    sub["_pending"].append(inv["id"])
    if sub["cancel_at_period_end"]:
        sub["status"] = "canceled"
        sub["canceled_at"] = sub["canceled_at"] or at
        sub["ended_at"] = at


def _expire_incomplete(store: Store, sub: Obj, at: int) -> None:
    """facts §5.2: unpaid for 23 h -> incomplete_expired, its open invoice voided."""
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = at
    inv = store.by_type["invoices"].get(sub["latest_invoice"] or "")
    if inv is not None and inv["status"] == "open":
        inv["status"] = "void"
        inv["amount_remaining"] = 0
        inv["status_transitions"]["voided_at"] = at


def run_subscription(store: Store, sub: Obj, until: int) -> None:
    """Process every rollover and finalization of `sub` due at or before `until`."""
    while True:
        due: list[tuple[int, int, Any]] = []
        if sub["status"] == "incomplete":
            due.append((sub["created"] + INCOMPLETE_EXPIRY_S, 2, None))
        elif sub["status"] not in ("canceled", "incomplete_expired"):
            end = period_bounds(sub, sub["_k"])[1]
            cancel_at = sub.get("cancel_at") or (end if sub["cancel_at_period_end"] else None)
            if cancel_at is not None and cancel_at <= end:
                due.append((cancel_at, 3, None))
            else:
                due.append((end, 0, None))
        for inv_id in sub["_pending"]:
            inv = store.by_type["invoices"].get(inv_id)
            if inv is not None and inv["automatically_finalizes_at"] is not None:
                due.append((inv["automatically_finalizes_at"], 1, inv))
        if not due:
            sub["_next_due"] = None
            return
        at, kind, inv = min(due, key=lambda d: (d[0], d[1]))
        if at > until:
            sub["_next_due"] = at  # lets tick skip this subscription until then
            return
        before = snapshot(sub)
        if kind == 0:
            _roll_period(store, sub, at)
        elif kind == 2:
            _expire_incomplete(store, sub, at)
        elif kind == 3:
            _end_at(store, sub, at)
        else:
            sub["_pending"].remove(inv["id"])
            _auto_finalize(store, sub, inv, at)
        sub_changed(store, sub, before, at)
        sub["_pending"] = [
            i
            for i in sub["_pending"]
            if (store.by_type["invoices"].get(i) or {}).get("automatically_finalizes_at")
            is not None
        ]


def tick(store: Store) -> None:
    """Complete due clock advances and bring wall-clock subscriptions up to date."""
    mono = time.monotonic()
    clocks = store.by_type["test_clocks"]
    for clock in clocks.values():
        if clock["status"] == "advancing" and clock["_ready_at"] <= mono:
            complete_advance(store, clock)
    now = int(time.time())
    customers = store.by_type["customers"]
    for sub in store.by_type["subscriptions"].values():
        cus = customers.get(sub["customer"])
        if cus is not None and not cus.get("test_clock"):
            next_due = sub.get("_next_due", 0)
            if next_due is not None and next_due <= now:
                run_subscription(store, sub, now)


def complete_advance(store: Store, clock: Obj) -> None:
    """Replay everything due up to the clock's target, then mark it ready."""
    target = clock["_target"]
    cus_ids = {c["id"] for c in store.all("customers") if c.get("test_clock") == clock["id"]}
    for sub in list(store.all("subscriptions")):
        if sub["customer"] in cus_ids:
            run_subscription(store, sub, target)
    clock["frozen_time"] = target
    clock["status"] = "ready"
    clock["status_details"] = {}
    clock.pop("_target", None)
    clock.pop("_ready_at", None)
    record(store, "test_helpers.test_clock.ready", clock, target)
