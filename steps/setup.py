"""Step 1 (seed: run.sh): the Stripe side on a Test Clock, and the price mapping.

Timeline (ARCHITECTURE.md § Timeline of the demo): the clock starts at now - 26 h, the
subscription starts there, then the clock advances to F = now - 5 min, so usage dated
F - 24 h .. F lies inside the first period, is not after the clock's time and is within
Stripe's 35-day window. A re-run reuses the objects in `.state.json` (their clock still
exists) unless `--fresh`; `--fresh` first retires the previous run's clock and mapping.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import stripe

from steps._billing import ensure_meter, is_missing, iso, retrieve_clock, wait_clock_ready
from steps._env import METRIC, StepEnv, StepError, load_env, main, parser
from steps._mapping import delete_mappings, upsert_mapping
from steps._state import INVOICE_FILE, STATE_FILE, DemoState, save_state, try_load_state

CLOCK_START_OFFSET_S = 26 * 3600
USAGE_ANCHOR_OFFSET_S = 5 * 60
UNIT_AMOUNT_CENTS = 5


def run(argv: Sequence[str]) -> int:
    """Create (or reuse) the demo's Stripe objects and upsert the price mapping."""
    args = parser("setup", "Create the Stripe side on a Test Clock and map api_calls.")
    args.add_argument("--fresh", action="store_true", help="create new objects")
    options = args.parse_args(argv)
    env = load_env()
    client, base = env.stripe_client()
    # Stripe first: an unreachable Stripe or a refused key must fail before the database
    # (the embedded one is started on demand) is touched.
    client.v1.test_helpers.test_clocks.list({"limit": 1})
    previous = try_load_state(env.state_dir)

    if previous is not None:
        if not options.fresh and _reusable(previous, base):
            if retrieve_clock(client, previous.testClockId) is not None:
                upsert_mapping(env.settings, previous)
                print(f"reusing the demo objects in {env.state_dir / STATE_FILE} (--fresh for new)")
                _print_state(previous)
                return 0
            print(f"test clock {previous.testClockId} no longer exists: creating new objects")
        _retire(env, client, base, previous)

    state = _create(env, client, base)
    print(f"state written to {env.state_dir / STATE_FILE}")
    _print_state(state)
    return 0


def _reusable(state: DemoState, base: str) -> bool:
    return state.setupComplete and not state.cleanedUp and state.stripeApiBase == base


def _retire(env: StepEnv, client: stripe.StripeClient, base: str, previous: DemoState) -> None:
    """Delete what the previous state created, so nothing is left untracked."""
    if previous.stripeApiBase == base and not previous.cleanedUp:
        try:
            client.v1.test_helpers.test_clocks.delete(previous.testClockId)
            print(f"deleted the previous test clock {previous.testClockId}")
        except stripe.InvalidRequestError as exc:
            if not is_missing(exc):
                raise
    if delete_mappings(env.settings, previous.tenantId):
        print(f"deleted the previous price mapping of tenant {previous.tenantId}")


def _create(env: StepEnv, client: stripe.StripeClient, base: str) -> DemoState:
    now = int(time.time())
    clock = client.v1.test_helpers.test_clocks.create(
        {"frozen_time": now - CLOCK_START_OFFSET_S, "name": "stripemeter parity demo"}
    )
    state = DemoState(tenantId=str(uuid.uuid4()), testClockId=clock.id, stripeApiBase=base)
    # Recorded before anything else, so a failed setup's clock is retired by the next run.
    save_state(env.state_dir, state)
    (env.state_dir / INVOICE_FILE).unlink(missing_ok=True)  # the previous objects' invoice
    print(f"created test clock {clock.id} frozen at {iso(clock.frozen_time)}")

    state.meterId = ensure_meter(client, METRIC, "sum", "API calls")
    product = client.v1.products.create({"name": "stripemeter demo API"})
    state.productId = product.id
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": UNIT_AMOUNT_CENTS,
            "nickname": "api_calls per call",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": state.meterId},
        }
    )
    state.priceId = price.id
    customer = client.v1.customers.create(
        {
            "test_clock": clock.id,
            "email": "demo@example.com",
            "name": "stripemeter demo",
            "metadata": {"tenantId": state.tenantId},
        }
    )
    state.customerId = customer.id
    # pm_card_visa is a template: attaching creates a new payment method; use its id.
    payment_method = client.v1.payment_methods.attach("pm_card_visa", {"customer": customer.id})
    state.paymentMethodId = payment_method.id
    client.v1.customers.update(
        customer.id, {"invoice_settings": {"default_payment_method": payment_method.id}}
    )
    subscription = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [{"price": price.id}],
            "collection_method": "charge_automatically",
        }
    )
    state.subscriptionId = subscription.id
    item = _only_item(subscription)
    state.subscriptionItemId = item["id"]
    state.periodStart = int(item["current_period_start"])
    state.periodEnd = int(item["current_period_end"])
    save_state(env.state_dir, state)

    frozen = int(time.time()) - USAGE_ANCHOR_OFFSET_S
    client.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": frozen})
    wait_clock_ready(client, clock.id, env.wait_timeout_s)
    state.frozenTime = frozen

    upsert_mapping(env.settings, state)
    state.setupComplete = True
    save_state(env.state_dir, state)
    return state


def _only_item(subscription: Any) -> Any:
    # `subscription.items` is dict.items on a StripeObject: index instead.
    data = subscription["items"]["data"]
    if len(data) != 1:
        raise StepError(f"subscription {subscription.id} has {len(data)} items, expected 1")
    return data[0]


def _print_state(state: DemoState) -> None:
    rows = [
        ("tenant", state.tenantId),
        ("test clock", state.testClockId),
        ("meter", state.meterId),
        ("price", f"{state.priceId} ({UNIT_AMOUNT_CENTS} cents per call)"),
        ("customer", state.customerId),
        ("payment method", state.paymentMethodId),
        ("subscription", f"{state.subscriptionId} item {state.subscriptionItemId}"),
        ("billing period", f"{iso(state.periodStart)} .. {iso(state.periodEnd)}"),
        ("clock time (F)", iso(state.frozenTime)),
        ("Stripe", state.stripeApiBase),
    ]
    for label, value in rows:
        print(f"  {label:<15} {value}")


if __name__ == "__main__":
    main("setup", run)
