"""Reads the steps share, on both sides of the parity: Stripe's and the ledger's.

Stripe facts relied on (stripe-api-facts.md): clocks advance asynchronously and are
polled until `ready` (§2.3); meter event summaries take minute-aligned
`[start_time, end_time)` windows (§3.3); periods live on subscription items (§5.1).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import stripe

from steps._env import METRIC, StepError
from steps._http import ApiClient
from steps._state import DemoState
from steps._wait import wait_until


def iso(ts: int) -> str:
    """Unix seconds as the ISO-8601 UTC string the stripemeter API takes."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fmt(value: Decimal) -> str:
    """A decimal for people: `425`, not `425.000000`."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def as_decimal(value: Any, what: str) -> Decimal:
    """A number from JSON (string or number) as an exact Decimal."""
    try:
        return Decimal(str(value))
    except Exception:
        raise StepError(f"{what} is not a number: {value!r}") from None


def is_missing(exc: stripe.StripeError) -> bool:
    """True for Stripe's 404 `resource_missing` (the object does not exist)."""
    return exc.http_status == 404 or exc.code == "resource_missing"


def retrieve_clock(client: stripe.StripeClient, clock_id: str) -> Any | None:
    """The Test Clock, or None when Stripe no longer has it."""
    try:
        return client.v1.test_helpers.test_clocks.retrieve(clock_id)
    except stripe.InvalidRequestError as exc:
        if is_missing(exc):
            return None
        raise


def wait_clock_ready(client: stripe.StripeClient, clock_id: str, timeout_s: float) -> Any:
    """Poll the clock until `ready`; `internal_failure` or a vanished clock is an error."""
    latest: dict[str, Any] = {}

    def probe() -> tuple[bool, str]:
        clock = retrieve_clock(client, clock_id)
        if clock is None:
            raise StepError(f"test clock {clock_id} disappeared while advancing")
        if clock.status == "internal_failure":
            raise StepError(
                f"test clock {clock_id} failed to advance (internal_failure); "
                "run `invoke setup --fresh`"
            )
        latest["clock"] = clock
        return clock.status == "ready", f"status {clock.status}"

    wait_until(f"test clock {clock_id} to be ready", probe, timeout_s=timeout_s)
    return latest["clock"]


def ensure_meter(
    client: stripe.StripeClient, event_name: str, formula: str, display_name: str
) -> str:
    """The meter for `event_name`, reused when it exists (event names are unique in an
    account; an inactive one is reactivated), else created with `formula`. A meter of
    the name that aggregates otherwise is a `StepError`: it cannot bill this usage."""
    for meter in client.v1.billing.meters.list({"limit": 100}).auto_paging_iter():
        if meter.event_name != event_name:
            continue
        found = meter.default_aggregation.formula
        if found != formula:
            raise StepError(
                f"meter {meter.id} for event {event_name!r} aggregates with {found!r}; "
                f"this needs a {formula!r} meter"
            )
        if meter.status != "active":
            client.v1.billing.meters.reactivate(meter.id)
            print(f"reactivated meter {meter.id} ({event_name})")
        else:
            print(f"reusing meter {meter.id} ({event_name})")
        return str(meter.id)
    meter = client.v1.billing.meters.create(
        {
            "display_name": display_name,
            "event_name": event_name,
            "default_aggregation": {"formula": formula},
        }
    )
    print(f"created meter {meter.id} ({event_name})")
    return str(meter.id)


def meter_total(
    client: stripe.StripeClient, meter_id: str, customer: str, start: int, end: int
) -> Decimal:
    """Stripe's aggregate for the customer over `[start, end)`, rounded up to minutes.

    The writer dates each meter event inside its hour bucket, so rounding both ends up
    to the minute keeps exactly the events of the buckets `local_total` counts.
    """
    summaries = client.v1.billing.meters.event_summaries.list(
        meter_id,
        {"customer": customer, "start_time": -(-start // 60) * 60, "end_time": -(-end // 60) * 60},
    )
    total = Decimal(0)
    for summary in summaries.auto_paging_iter():
        total += as_decimal(summary.aggregated_value, "meter summary aggregated_value")
    return total


def ceil_hour(ts: int) -> int:
    """The first whole UTC hour at or after `ts`."""
    return -(-ts // 3600) * 3600


# The figure of `GET /v1/usage` that is a period's value for each aggregation kind (the
# kind's `period_sql`): the sum, the maximum, the latest value, the number of events.
USAGE_FIGURE = {"sum": "total", "max": "max", "last": "last", "count": "events"}


def local_total(
    api: ApiClient,
    state: DemoState,
    start: int,
    end: int,
    customer_ref: str | None = None,
    aggregation: str = "sum",
) -> Decimal:
    """The ledger's value for a customer of the demo's tenant (by default the demo's
    customer) over `[start, end)` (`GET /v1/usage`), by the mapping's aggregation kind
    (0 when the period has no usage).

    The ledger keeps hourly buckets and the API takes whole hours; a bucket's hour is in
    `[start, end)` exactly when it is in `[ceil_hour(start), ceil_hour(end))`, the same
    rule the reconciler applies to billing periods that do not start on the hour.
    """
    body = api.get(
        "/v1/usage",
        {
            "tenantId": state.tenantId,
            "metric": METRIC,
            "customerRef": customer_ref or state.customerId,
            "from": iso(ceil_hour(start)),
            "to": iso(ceil_hour(end)),
        },
    )
    figure = USAGE_FIGURE.get(aggregation)
    if figure is None:
        raise StepError(f"the mapping's aggregation {aggregation!r} is not one validate knows")
    if not isinstance(body, dict) or figure not in body:
        raise StepError(f"GET /v1/usage answered without {figure}: {body!r}")
    value = body[figure]
    return Decimal(0) if value is None else as_decimal(value, f"usage {figure}")


# How long the wait goes on re-reading both totals after Stripe's meter read above the
# ledger: the two reads are not one snapshot, so a ledger read just before usage counted
# can trail a meter read just after it was pushed.
SETTLE_S = 10.0


def demo_mapping(api: ApiClient, state: DemoState) -> tuple[bool, str]:
    """(whether the tenant has an active mapping of the demo's metric to its price, its
    aggregation kind: the active one's, else a switched-off one's, else `sum`)."""
    body = api.get("/v1/mappings", {"tenantId": state.tenantId})
    rows = body.get("mappings") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise StepError(f"GET /v1/mappings answered without mappings: {body!r}")
    ours = [
        row
        for row in rows
        if isinstance(row, dict)
        and row.get("metric") == METRIC
        and row.get("priceId") == state.priceId
    ]
    active = [row for row in ours if row.get("active")]
    chosen = (active or ours or [{}])[0]
    return bool(active), str(chosen.get("aggregation") or "sum")


def no_mapping_message(state: DemoState) -> str:
    """Why the writer pushes nothing when the demo's mapping is gone, and the fix."""
    return (
        f"tenant {state.tenantId} has no active mapping of {METRIC} to price {state.priceId} "
        "(removed by `invoke cleanup`?), so the writer pushes nothing to Stripe; run "
        "`invoke setup` to map it again"
    )


@dataclass(frozen=True)
class Synced:
    """The totals a writer wait ended on: the ledger's and Stripe's meter."""

    ledger: Decimal
    stripe: Decimal

    @property
    def agree(self) -> bool:
        """Whether Stripe's meter holds exactly what the ledger counted."""
        return self.ledger == self.stripe


def wait_writer_synced(
    api: ApiClient,
    client: stripe.StripeClient,
    state: DemoState,
    *,
    at_least: Decimal | None,
    timeout_s: float,
) -> Synced:
    """Wait until the writer has nothing pending and Stripe's meter shows the ledger total.

    Without an active mapping nothing will ever be pushed: that fails at once, naming
    it. Stripe ahead of the ledger ends the wait too (waiting cannot fix it), once both
    totals were re-read for `SETTLE_S` without agreeing; a warning says so then, and
    only then.

    The window runs from the item's period start to just past F (the clock time usage
    is dated against). `at_least`, when given, is a floor for the local total, so a
    wait cannot end before the ledger counted what was just sent.
    """
    if not demo_mapping(api, state)[0]:
        raise StepError(no_mapping_message(state))
    start, end = state.periodStart, state.frozenTime + 60
    seen_total: dict[str, Decimal] = {}

    def probe() -> tuple[bool, str]:
        status = api.get("/v1/writer/status", {"tenantId": state.tenantId})
        pending = int(status.get("pendingBuckets", -1)) if isinstance(status, dict) else -1
        local = local_total(api, state, start, end)
        remote = meter_total(client, state.meterId, state.customerId, start, end)
        seen = f"pending buckets {pending}, ledger {fmt(local)}, Stripe meter {fmt(remote)}"
        error = status.get("lastError") if isinstance(status, dict) else None
        if error:
            seen += f", writer error: {error}"
        seen_total["local"], seen_total["remote"] = local, remote
        # Stripe behind the ledger is aggregation or pushing still under way; Stripe ahead
        # of it with nothing pending will not change by waiting (usage sent behind the
        # writer's back): go on, and let validate report the drift.
        done = pending == 0 and remote >= local and (at_least is None or local >= at_least)
        return done, seen

    wait_until(
        "the writer to push the ledger to Stripe",
        probe,
        timeout_s=timeout_s,
        hint="is `stripemeter workers` (or the API with workers) running?",
    )
    settle_until = time.monotonic() + min(SETTLE_S, timeout_s)
    while seen_total["remote"] != seen_total["local"] and time.monotonic() < settle_until:
        time.sleep(0.5)
        probe()
    synced = Synced(seen_total["local"], seen_total["remote"])
    if not synced.agree:
        print(
            f"  WARNING: Stripe's meter holds {fmt(synced.stripe - synced.ledger)} more than "
            f"the ledger ({fmt(synced.stripe)} vs {fmt(synced.ledger)}, still after "
            f"{SETTLE_S:.0f} s): usage reached Stripe without the writer, validate will "
            "report it as drift",
            flush=True,
        )
    return synced


def to_plain(obj: Any) -> Any:
    """A Stripe object as plain JSON data (the SDK's Decimals become strings)."""
    data = obj.to_dict() if isinstance(obj, stripe.StripeObject) else obj
    return json.loads(json.dumps(data, default=str))
