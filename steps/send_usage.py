"""Step 2 (seed: send-usage.sh): normal, duplicate and late usage through the API.

The seed's batch, dated against F (the clock time `setup` advanced to): `demo-evt-1`
100 at F - 25 min, `demo-evt-2` 250 at F, `demo-evt-1` again (a duplicate), and
`demo-evt-late` 75 at F - 24 h, which is sent in a second request only after the writer
has pushed the others to Stripe — so it really arrives late, into an hour already
pushed. The timestamps come from the state, so a re-run sends identical requests and
every key is reported as a duplicate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from steps._billing import iso, wait_writer_synced
from steps._env import METRIC, StepError, load_env, main, parser
from steps._http import ApiClient
from steps._state import DemoState, load_state

# The seed's request key; the API scopes request keys by tenant, so every fresh run
# (a new tenant) may reuse it.
FIRST_BATCH_HEADER = "demo-batch-1"
LATE_BATCH_HEADER = "demo-batch-1-late"


@dataclass(frozen=True)
class DemoEvent:
    """One usage event of the seed's batch, timed relative to F."""

    key: str
    quantity: int
    offset_s: int


FIRST_BATCH = (
    DemoEvent("demo-evt-1", 100, -25 * 60),
    DemoEvent("demo-evt-2", 250, 0),
    DemoEvent("demo-evt-1", 100, -25 * 60),
)
LATE_BATCH = (DemoEvent("demo-evt-late", 75, -24 * 3600),)


def expected_total(*batches: Sequence[DemoEvent]) -> Decimal:
    """What the ledger holds after these batches: each key counted once."""
    by_key = {event.key: event.quantity for batch in batches for event in batch}
    return Decimal(sum(by_key.values()))


def run(argv: Sequence[str]) -> int:
    """Send both requests, waiting for the writer in between; print per-event results."""
    parser("send_usage", "Send the seed's usage: normal, duplicate and late.").parse_args(argv)
    env = load_env()
    state = load_state(env.state_dir)
    client, _ = env.stripe_client(state.stripeApiBase)
    api = ApiClient(env.api_base)
    print(f"sending usage for tenant {state.tenantId}, customer {state.customerId}")
    print(f"usage is dated against the clock time F = {iso(state.frozenTime)}")

    first = _send(api, state, FIRST_BATCH_HEADER, FIRST_BATCH)
    wait_writer_synced(
        api,
        client,
        state,
        at_least=expected_total(FIRST_BATCH),
        timeout_s=env.wait_timeout_s,
    )
    late = _send(api, state, LATE_BATCH_HEADER, LATE_BATCH)

    rows = list(zip(FIRST_BATCH + LATE_BATCH, first + late, strict=True))
    _print_table(state, rows)
    accepted = sum(1 for _, result in rows if result.get("status") == "accepted")
    duplicates = sum(1 for _, result in rows if result.get("status") == "duplicate")
    print(
        f"accepted {accepted}, duplicates {duplicates}; ledger total expected "
        f"{expected_total(FIRST_BATCH, LATE_BATCH)}"
    )
    errors = [r for _, r in rows if r.get("status") not in ("accepted", "duplicate")]
    if errors:
        first_error = errors[0]
        raise StepError(
            f"{len(errors)} event(s) refused, e.g. {first_error.get('idempotencyKey')}: "
            f"{first_error.get('error') or first_error.get('status')}"
        )
    return 0


def _send(
    api: ApiClient, state: DemoState, header: str, batch: Sequence[DemoEvent]
) -> list[dict[str, Any]]:
    """POST one batch and return its per-event results, in the batch's order."""
    body = {
        "events": [
            {
                "tenantId": state.tenantId,
                "metric": METRIC,
                "customerRef": state.customerId,
                "quantity": event.quantity,
                "ts": iso(state.frozenTime + event.offset_s),
                "idempotencyKey": event.key,
                "source": "stripemeter-demo",
            }
            for event in batch
        ]
    }
    answer = api.post("/v1/events/ingest", body, headers={"Idempotency-Key": header})
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(batch):
        raise StepError(f"POST /v1/events/ingest answered without one result per event: {answer}")
    print(
        f"request {header}: accepted {answer.get('accepted')}, duplicates "
        f"{answer.get('duplicates')} (requestId {answer.get('requestId')})"
    )
    return [r if isinstance(r, dict) else {"status": str(r)} for r in results]


def _offset(seconds: int) -> str:
    """F-relative time for people: `F`, `F-25 min`, `F-24 h`."""
    if seconds == 0:
        return "F"
    if seconds % 3600 == 0:
        return f"F{seconds // 3600:+d} h"
    return f"F{seconds // 60:+d} min"


def _print_table(state: DemoState, rows: Sequence[tuple[DemoEvent, dict[str, Any]]]) -> None:
    print(f"  {'idempotency key':<16} {'quantity':>8}  {'timestamp':<20}  {'when':>8}  status")
    for event, result in rows:
        status = str(result.get("status"))
        if result.get("error"):
            status += f" ({result['error']})"
        offset = _offset(event.offset_s)
        print(
            f"  {event.key:<16} {event.quantity:>8}  {iso(state.frozenTime + event.offset_s):<20}"
            f"  {offset:>8}  {status}"
        )


if __name__ == "__main__":
    main("send_usage", run)
