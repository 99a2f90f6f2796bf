"""What a scenario is, as plain data: customers, price, meter, cycles and usage requests.

Pure (standard library only), like the oracle that reads it: nothing here knows the
service, the emulator or how a scenario is run. Times are offsets, not dates: the
runner dates each event against the cycle's anchors (see `UsageEvent.offset_s`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, get_args

AggregationName = Literal["sum", "count", "max", "last"]
AGGREGATIONS: tuple[str, ...] = get_args(AggregationName)

# When an event is sent, relative to its billing period:
#   open        while the period is open (before its end);
#   grace       after the period end, before the renewal invoice is finalized (1 h later);
#   post_close  after the invoice is final: only a correction can bill it.
Phase = Literal["open", "grace", "post_close"]
PHASES: tuple[str, ...] = get_args(Phase)
BILLED_PHASES: tuple[str, ...] = ("open", "grace")

TiersMode = Literal["graduated", "volume"]
TIERS_MODES: tuple[str, ...] = get_args(TiersMode)


@dataclass(frozen=True)
class Tier:
    """One price tier: units up to `up_to` (None: the last, `inf`) at `unit_amount`."""

    up_to: int | None
    unit_amount: int
    flat_amount: int = 0


@dataclass(frozen=True)
class Price:
    """The metered price, in minor units: per unit, or tiered (`tiers_mode`)."""

    currency: str = "usd"
    unit_amount: int | None = None
    tiers_mode: TiersMode | None = None
    tiers: tuple[Tier, ...] = ()


@dataclass(frozen=True)
class Customer:
    """A customer on the scenario's test clock; `name` is its customerRef.

    `cancel_at_period_end_of`: during that cycle the subscription is set to cancel at the
    period end, so that cycle's invoice is its last.
    """

    name: str
    cancel_at_period_end_of: int | None = None

    def last_cycle(self, cycles: int) -> int:
        """The last cycle the customer is billed for."""
        if self.cancel_at_period_end_of is None:
            return cycles
        return min(cycles, self.cancel_at_period_end_of)


@dataclass(frozen=True)
class UsageEvent:
    """One usage event of a request.

    `offset_s` dates it: for `open` events against F, the clock time the open phase runs
    at (the period start + 26 h - 5 min, as the seed's demo), so -86400 <= offset_s <= 0;
    for `grace` and `post_close` events against the period end, so -86400 <= offset_s < 0
    (the event belongs to the period but arrives after it closed).
    """

    customer: str
    cycle: int
    phase: Phase
    key: str
    quantity: Decimal
    offset_s: int


@dataclass(frozen=True)
class UsageRequest:
    """One POST /v1/events/ingest, with its Idempotency-Key header `key`.

    `after_writer`: sent only once the writer has pushed everything sent before (a late
    arrival into hours already pushed). `sends`: how many times the identical request is
    sent (a client retrying with the same key; the repeats change nothing).
    """

    cycle: int
    phase: Phase
    key: str
    events: tuple[UsageEvent, ...]
    after_writer: bool = False
    sends: int = 1


@dataclass(frozen=True)
class StripeExtra:
    """A meter event sent straight to Stripe with the SDK, behind the service's back, in
    the open phase of `cycle`: Stripe bills more than the ledger (`sum` meters only)."""

    customer: str
    cycle: int
    quantity: int
    offset_s: int


@dataclass(frozen=True)
class Scenario:
    """A whole scenario: everything the runner does and the oracle needs."""

    name: str
    description: str
    seed: int
    cycles: int
    interval: Literal["month"]
    aggregation: AggregationName
    price: Price
    customers: tuple[Customer, ...]
    requests: tuple[UsageRequest, ...] = ()
    stripe_extras: tuple[StripeExtra, ...] = field(default=())

    def customer_names(self) -> tuple[str, ...]:
        """The customers' names (customerRefs), in the file's order."""
        return tuple(c.name for c in self.customers)

    def requests_of(self, cycle: int, phase: str) -> tuple[UsageRequest, ...]:
        """The requests sent in one phase of one cycle, in sending order."""
        return tuple(r for r in self.requests if r.cycle == cycle and r.phase == phase)
