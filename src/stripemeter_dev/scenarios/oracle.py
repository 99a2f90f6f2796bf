"""The independent oracle: what every invoice of every customer must bill.

A pure function of the scenario's events and price (standard library only; it imports
nothing from `stripemeter` or `stripe_emulator`, and a test checks that), so the service
is checked against it and it is never derived from the service. Rules, per customer and
billing period (cycle):

- an idempotency key counts once: the first request carrying it decides its quantity;
- the period's value over its distinct events: `sum` the quantities, `count` the events,
  `max` the largest quantity, `last` the quantity of the latest event by time;
- the invoice bills what arrived before finalization (`open` and `grace` phases) in
  whole units, floor of the period total (a sum's fractions carry across hours), plus
  any meter event sent straight to Stripe;
- afterwards the whole period (with `post_close` usage) is what the customer owes:
  billed less, the difference is an invoice item on the next invoice; billed more, a
  credit note on this invoice. A correction's amount is the difference of what the two
  quantities cost (tiers respected).
- every customer's first invoice (`subscription_create`, cycle 0) bills nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from stripemeter_dev.scenarios.model import BILLED_PHASES, Price, Scenario, UsageEvent


@dataclass(frozen=True)
class Adjustment:
    """An invoice item or credit note line: whole units and what they cost."""

    quantity: int
    amount: int


@dataclass(frozen=True)
class ExpectedInvoice:
    """One invoice as the oracle sees it.

    `quantity`/`amount`: the metered line; `ledger`: the period's exact value once every
    event arrived (with post-close usage); `invoice_items`: corrections of the previous
    period billed here; `credit_notes`: credits issued against this invoice; `total`:
    the invoice's total (its lines); `net`: total minus credit notes.
    """

    customer: str
    cycle: int
    quantity: int
    amount: int
    ledger: Decimal
    invoice_items: tuple[Adjustment, ...] = ()
    credit_notes: tuple[Adjustment, ...] = ()

    @property
    def total(self) -> int:
        return self.amount + sum(item.amount for item in self.invoice_items)

    @property
    def net(self) -> int:
        return self.total - sum(note.amount for note in self.credit_notes)


def amount_for(price: Price, quantity: int) -> int:
    """What `quantity` whole units cost, in minor units, rounded half up."""
    quantity = max(quantity, 0)
    if price.tiers_mode is None:
        return _round(Decimal(price.unit_amount or 0) * quantity)
    if price.tiers_mode == "volume":
        for tier in price.tiers:
            if tier.up_to is None or quantity <= tier.up_to:
                return _round(Decimal(tier.unit_amount) * quantity + tier.flat_amount)
        return 0
    total, lower = Decimal(0), 0
    for tier in price.tiers:
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        total += Decimal(tier.unit_amount) * (upper - lower) + tier.flat_amount
        lower = upper
    return _round(total)


def period_value(aggregation: str, events: Iterable[UsageEvent]) -> Decimal:
    """The exact value of a period's distinct events under the aggregation."""
    chosen = list(events)
    if aggregation == "count":
        return Decimal(len(chosen))
    if not chosen:
        return Decimal(0)
    if aggregation == "max":
        return max(event.quantity for event in chosen)
    if aggregation == "last":
        return max(chosen, key=event_time).quantity
    return sum((event.quantity for event in chosen), Decimal(0))


def event_time(event: UsageEvent) -> tuple[int, int]:
    """An order of a period's events by time: open events are dated within the day
    before F (26 h into the period), grace and post-close ones within the day before the
    period end, which is days later; inside each anchor, by offset."""
    return (0 if event.phase == "open" else 1, event.offset_s)


def whole_units(value: Decimal) -> int:
    """What Stripe can bill of a value: whole units, the floor."""
    return math.floor(value)


def distinct_events(scenario: Scenario) -> list[UsageEvent]:
    """Every idempotency key once, as first sent (retries and duplicates dropped)."""
    seen: dict[str, UsageEvent] = {}
    for request in scenario.requests:
        for event in request.events:
            seen.setdefault(event.key, event)
    return list(seen.values())


def expected_invoices(scenario: Scenario) -> list[ExpectedInvoice]:
    """Every invoice of every customer, in customer then cycle order."""
    events = distinct_events(scenario)
    invoices: list[ExpectedInvoice] = []
    for customer in scenario.customers:
        mine = [e for e in events if e.customer == customer.name]
        last = customer.last_cycle(scenario.cycles)
        invoices.append(ExpectedInvoice(customer.name, 0, 0, 0, Decimal(0)))
        carried: tuple[Adjustment, ...] = ()
        for cycle in range(1, last + 1):
            period = [e for e in mine if e.cycle == cycle]
            billed_value = period_value(
                scenario.aggregation, (e for e in period if e.phase in BILLED_PHASES)
            )
            extra = sum(
                x.quantity
                for x in scenario.stripe_extras
                if x.customer == customer.name and x.cycle == cycle
            )
            billed = whole_units(billed_value) + extra
            ledger = period_value(scenario.aggregation, period)
            owed = whole_units(ledger)
            correction = Adjustment(
                abs(owed - billed),
                abs(amount_for(scenario.price, owed) - amount_for(scenario.price, billed)),
            )
            invoices.append(
                ExpectedInvoice(
                    customer=customer.name,
                    cycle=cycle,
                    quantity=billed,
                    amount=amount_for(scenario.price, billed),
                    ledger=ledger,
                    invoice_items=carried,
                    credit_notes=(correction,) if billed > owed else (),
                )
            )
            carried = (correction,) if owed > billed else ()
    return invoices


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))
