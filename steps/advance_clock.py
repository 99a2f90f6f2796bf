"""Step 3 (seed: advance-clock.sh): close the billing period on the Test Clock.

Before advancing it waits until the writer has nothing pending and Stripe's meter
summary equals the ledger (meter aggregation is asynchronous on real Stripe; advancing
too early would invoice less). It then advances past the item's period end + 1 h — a
renewal invoice is finalized one hour of clock time after it is drafted — waits for
the clock to be `ready` and for the `subscription_cycle` invoice to be `open` or
`paid`, and writes it, with all its lines, to `invoice.json`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import stripe

from steps._billing import (
    fmt,
    iso,
    local_total,
    retrieve_clock,
    to_plain,
    wait_clock_ready,
    wait_writer_synced,
)
from steps._env import StepError, load_env, main, parser
from steps._http import ApiClient
from steps._state import INVOICE_FILE, DemoState, load_state, write_json_atomic
from steps._wait import wait_until

FINALIZATION_DELAY_S = 3600
MARGIN_S = 60
PAID_GRACE_S = 15.0
FINAL_STATUSES = ("open", "paid")


def run(argv: Sequence[str]) -> int:
    """Drain, advance past the period end, and store the finalized renewal invoice."""
    parser("advance_clock", "Advance the Test Clock past the period end.").parse_args(argv)
    env = load_env()
    state = load_state(env.state_dir)
    client, _ = env.stripe_client(state.stripeApiBase)
    api = ApiClient(env.api_base)

    clock = retrieve_clock(client, state.testClockId)
    if clock is None:
        raise StepError(
            f"test clock {state.testClockId} no longer exists (cleaned up?); run `invoke setup`"
        )
    if clock.status != "ready":
        clock = wait_clock_ready(client, clock.id, env.wait_timeout_s)

    target = state.periodEnd + FINALIZATION_DELAY_S + MARGIN_S
    if clock.frozen_time < target:
        ledger = local_total(api, state, state.periodStart, state.frozenTime + 60)
        if ledger <= 0:
            raise StepError(
                "the ledger has no usage for this period; run `invoke send-usage` first"
            )
        synced = wait_writer_synced(
            api, client, state, at_least=ledger, timeout_s=env.wait_timeout_s
        )
        if synced.agree:
            print(f"ledger and Stripe meter agree: {fmt(synced.ledger)}")
        else:
            print(
                f"ledger {fmt(synced.ledger)}, Stripe meter {fmt(synced.stripe)}: "
                "advancing anyway (validate reports the drift)"
            )
        print(f"advancing test clock {clock.id} from {iso(clock.frozen_time)} to {iso(target)}")
        print(f"  (period end {iso(state.periodEnd)} + 1 h for finalization)")
        client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": target})
        wait_clock_ready(client, clock.id, env.wait_timeout_s)
    else:
        print(f"test clock {clock.id} is already at {iso(clock.frozen_time)}, past the period end")

    invoice = _wait_for_renewal(client, state, env.wait_timeout_s)
    lines = [to_plain(line) for line in _lines(client, invoice.id)]
    document = to_plain(invoice)
    document["lines"] = {
        "object": "list",
        "data": lines,
        "has_more": False,
        "url": f"/v1/invoices/{invoice.id}/lines",
    }
    write_json_atomic(env.state_dir / INVOICE_FILE, document)
    print(
        f"renewal invoice {invoice.id}: status {invoice.status}, "
        f"amount due {invoice.amount_due} {invoice.currency}"
    )
    for line in lines:
        price = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
        period = line.get("period") or {}
        print(
            f"  line {price}: quantity {line.get('quantity')}, amount {line.get('amount')}, "
            f"period {iso(int(period.get('start', 0)))} .. {iso(int(period.get('end', 0)))}"
        )
    print(f"written to {env.state_dir / INVOICE_FILE}")
    return 0


def _renewal(client: stripe.StripeClient, state: DemoState) -> Any | None:
    """The first `subscription_cycle` invoice of the demo's subscription, if any."""
    invoices = client.v1.invoices.list({"subscription": state.subscriptionId, "limit": 100})
    cycle = [i for i in invoices.auto_paging_iter() if i.billing_reason == "subscription_cycle"]
    return min(cycle, key=lambda i: (i.created, i.id)) if cycle else None


def _wait_for_renewal(client: stripe.StripeClient, state: DemoState, timeout_s: float) -> Any:
    """Wait for the renewal invoice to be finalized (`open` or `paid`); prefer `paid`."""
    found: dict[str, Any] = {}

    def finalized() -> tuple[bool, str]:
        invoice = _renewal(client, state)
        if invoice is None:
            return False, "no subscription_cycle invoice yet"
        found["invoice"] = invoice
        return invoice.status in FINAL_STATUSES, f"invoice {invoice.id} is {invoice.status}"

    wait_until(
        "the renewal invoice to be finalized",
        finalized,
        timeout_s=timeout_s,
        hint="advance the clock further with `invoke advance-clock`",
    )
    invoice = found["invoice"]
    deadline = time.monotonic() + PAID_GRACE_S
    # A finalized invoice is charged right after; give the charge a moment to land.
    while invoice.status == "open" and time.monotonic() < deadline:
        time.sleep(0.5)
        invoice = client.v1.invoices.retrieve(invoice.id)
    return invoice


def _lines(client: stripe.StripeClient, invoice_id: str) -> list[Any]:
    listing = client.v1.invoices.line_items.list(invoice_id, {"limit": 100})
    return list(listing.auto_paging_iter())


if __name__ == "__main__":
    main("advance_clock", run)
