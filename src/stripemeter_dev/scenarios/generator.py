"""Usage requests generated from a scenario's seed: the same file always gives the same.

A `[[generate]]` table describes a stream (how many events per customer and cycle, the
quantity range and decimals, duplicates, retries, late and out-of-order arrivals); this
module turns it into `UsageRequest`s with `random.Random` seeded by a string of the
scenario's seed and the stream's place, so neither PYTHONHASHSEED nor the order other
streams are generated in changes what comes out. Pure, like the model and the oracle.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from stripemeter_dev.scenarios.model import Phase, UsageEvent, UsageRequest

# Events are dated on whole minutes within the day before their anchor, never on it or
# in its first hour, so no event sits on a period or hour boundary by accident.
LATEST_OFFSET_MIN = -1
EARLIEST_OFFSET_MIN = -23 * 60


@dataclass(frozen=True)
class StreamSpec:
    """One `[[generate]]` table, checked (see `loader`)."""

    index: int
    phase: Phase
    cycles: tuple[int, ...]
    customers: tuple[str, ...]
    events: int
    quantity_min: int
    quantity_max: int
    decimals: int = 0
    duplicates: int = 0
    retries: int = 0
    late: int = 0
    shuffle: bool = True
    batch: int = 10


def generate(scenario_name: str, seed: int, spec: StreamSpec) -> list[UsageRequest]:
    """The stream's requests, cycle by cycle, in sending order."""
    requests: list[UsageRequest] = []
    for cycle in spec.cycles:
        rng = random.Random(f"{seed}:{spec.index}:{spec.phase}:{cycle}")
        events = [e for customer in spec.customers for e in _events(rng, spec, cycle, customer)]
        late = rng.sample(events, min(spec.late, len(events))) if spec.late else []
        on_time = [e for e in events if e not in late]
        if spec.shuffle:
            rng.shuffle(on_time)
        else:
            on_time.sort(key=lambda e: e.offset_s)
        prefix = f"{scenario_name}-g{spec.index}-c{cycle}-{spec.phase}"
        batches = [on_time[i : i + spec.batch] for i in range(0, len(on_time), spec.batch)]
        retried = set(rng.sample(range(len(batches)), min(spec.retries, len(batches))))
        for number, chunk in enumerate(batches):
            requests.append(
                UsageRequest(
                    cycle=cycle,
                    phase=spec.phase,
                    key=f"{prefix}-{number}",
                    events=tuple(chunk),
                    sends=2 if number in retried else 1,
                )
            )
        duplicates = rng.sample(on_time, min(spec.duplicates, len(on_time)))
        after = late + duplicates
        if after:
            requests.append(
                UsageRequest(
                    cycle=cycle,
                    phase=spec.phase,
                    key=f"{prefix}-late",
                    events=tuple(after),
                    after_writer=True,
                )
            )
    return requests


def _events(rng: random.Random, spec: StreamSpec, cycle: int, customer: str) -> list[UsageEvent]:
    minutes = rng.sample(range(EARLIEST_OFFSET_MIN, LATEST_OFFSET_MIN + 1), spec.events)
    scale = 10**spec.decimals
    return [
        UsageEvent(
            customer=customer,
            cycle=cycle,
            phase=spec.phase,
            key=f"{customer}-g{spec.index}-c{cycle}-{spec.phase}-{number}",
            quantity=Decimal(
                rng.randint(max(1, spec.quantity_min * scale), spec.quantity_max * scale)
            )
            / scale,
            offset_s=minute * 60,
        )
        for number, minute in enumerate(minutes)
    ]
