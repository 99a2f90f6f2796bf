"""Step 5 (seed: cleanup.sh): delete the Test Clock and the demo's price mapping.

Deleting the clock cascades to its customer, subscription and invoices. A clock that
is already gone (404) counts as deleted, so running cleanup twice is fine. The state
files stay, as a record of the run; `setup` creates new objects next time.
"""

from __future__ import annotations

from collections.abc import Sequence

import stripe

from steps._billing import is_missing
from steps._env import load_env, main, parser
from steps._mapping import delete_mappings
from steps._state import load_state, save_state


def run(argv: Sequence[str]) -> int:
    """Delete the clock (404 = already gone) and the tenant's mapping rows."""
    parser("cleanup", "Delete the Test Clock and the price mapping.").parse_args(argv)
    env = load_env()
    state = load_state(env.state_dir, require_complete=False)
    client, _ = env.stripe_client(state.stripeApiBase)
    try:
        client.v1.test_helpers.test_clocks.delete(state.testClockId)
        print(f"deleted test clock {state.testClockId} (and its customer, subscription, invoices)")
    except stripe.InvalidRequestError as exc:
        if not is_missing(exc):
            raise
        print(f"test clock {state.testClockId} was already gone")
    removed = delete_mappings(env.settings, state.tenantId)
    print(f"deleted {removed} price mapping row(s) of tenant {state.tenantId}")
    state.cleanedUp = True
    save_state(env.state_dir, state)
    return 0


if __name__ == "__main__":
    main("cleanup", run)
