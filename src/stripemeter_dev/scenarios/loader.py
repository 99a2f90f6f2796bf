"""Reading `scenarios/<name>.toml`: every field checked, every mistake one line.

The file format (README § Scenarios has the whole table):

    name, description, seed, cycles (1-12), interval ("month"), aggregation
    [price]            currency, unit_amount | tiers_mode + tiers [{up_to, unit_amount,
                       flat_amount}], the last tier's up_to "inf"
    [[customers]]      name (the customerRef), cancel_at_period_end_of (a cycle)
    [[requests]]       cycle, phase, key, after_writer, sends, events [{customer, key,
                       quantity, offset_s}]                     (usage written out)
    [[generate]]       phase, cycles, customers, events, quantity [min, max], decimals,
                       duplicates, retries, late, shuffle, batch (usage from the seed)
    [[stripe_extras]]  customer, cycle, quantity, offset_s     (sent to Stripe directly)

An unknown key, a wrong type or a value out of range raises `ScenarioError` naming the
file, the field and what is allowed; nothing is run from a file that does not load.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, cast

from stripemeter.errors import StripemeterError
from stripemeter_dev.scenarios.generator import StreamSpec, generate
from stripemeter_dev.scenarios.model import (
    AGGREGATIONS,
    PHASES,
    TIERS_MODES,
    AggregationName,
    Customer,
    Phase,
    Price,
    Scenario,
    StripeExtra,
    Tier,
    TiersMode,
    UsageEvent,
    UsageRequest,
)
from stripemeter_dev.scenarios.oracle import event_time

MAX_CUSTOMERS = 3  # Stripe: at most 3 customers per test clock
MAX_CYCLES = 12
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
CUSTOMER_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
DAY_S = 86400

TOP_KEYS = {
    "name",
    "description",
    "seed",
    "cycles",
    "interval",
    "aggregation",
    "price",
    "customers",
    "requests",
    "generate",
    "stripe_extras",
}


class ScenarioError(StripemeterError):
    """A scenario file cannot be used; the message names the file and the field."""


def scenario_path(directory: Path, name: str) -> Path:
    """The file of scenario `name`, refusing names that are not a scenario's."""
    if not NAME_PATTERN.match(name):
        raise ScenarioError(
            f"scenario name {name!r} is not valid: use lowercase letters, digits, -"
        )
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(scenario_names(directory)) or "none"
        raise ScenarioError(f"no scenario {name!r} in {directory} (known: {known})")
    return path


def scenario_names(directory: Path) -> list[str]:
    """The scenarios in `directory`, by name."""
    return sorted(p.stem for p in directory.glob("*.toml"))


def load_scenario(path: Path) -> Scenario:
    """Parse and check one scenario file, generating its streams."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path} is not valid TOML: {exc}") from None
    return _Reader(path).scenario(data)


class _Reader:
    """Field-by-field checks with messages that say `<file>: <field>: <problem>`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.path.name}: {where}: {problem}")

    def table(
        self, value: Any, where: str, allowed: set[str], required: set[str]
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(
                f"{where}.{unknown[0]}" if where else unknown[0],
                f"unknown key; allowed: {', '.join(sorted(allowed))}",
            )
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(f"{where}.{missing[0]}" if where else missing[0], "is required")
        return value

    def integer(self, value: Any, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(where, f"must be a whole number from {low} to {high} (got {value!r})")
        return value

    def string(self, value: Any, where: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            shown = f" matching {pattern.pattern}" if pattern is not None else ""
            raise self.fail(where, f"must be a string{shown} (got {value!r})")
        return value

    def choice(self, value: Any, where: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(where, f"must be one of {', '.join(choices)} (got {value!r})")
        return str(value)

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false (got {value!r})")
        return value

    def items(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "must be an array")
        return value

    def quantity(self, value: Any, where: str) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(where, f"must be a number (got {value!r})")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise self.fail(where, f"must be a number (got {value!r})") from None
        if not number.is_finite() or number <= 0 or number.as_tuple().exponent < -6:  # type: ignore[operator]
            raise self.fail(where, f"must be positive with at most 6 decimals (got {value!r})")
        return number

    # -- the file ----------------------------------------------------------------

    def scenario(self, data: dict[str, Any]) -> Scenario:
        required = {"name", "description", "seed", "cycles", "aggregation", "price", "customers"}
        self.table(data, "", TOP_KEYS, required)
        name = self.string(data["name"], "name", NAME_PATTERN)
        if name != self.path.stem:
            raise self.fail("name", f"must be the file's name {self.path.stem!r} (got {name!r})")
        cycles = self.integer(data["cycles"], "cycles", 1, MAX_CYCLES)
        interval = data.get("interval", "month")
        if interval != "month":
            raise self.fail("interval", f'only "month" is supported (got {interval!r})')
        aggregation = cast(
            AggregationName, self.choice(data["aggregation"], "aggregation", AGGREGATIONS)
        )
        customers = self.customers(data["customers"], cycles)
        names = tuple(c.name for c in customers)
        seed = self.integer(data["seed"], "seed", 0, 2**63 - 1)
        requests = [
            self.request(raw, f"requests[{i}]", customers, cycles)
            for i, raw in enumerate(self.items(data.get("requests", []), "requests"))
        ]
        for i, raw in enumerate(self.items(data.get("generate", []), "generate")):
            spec = self.stream(raw, f"generate[{i}]", i, names, cycles)
            requests += generate(name, seed, spec)
        self.check_cycles(requests, customers, cycles)
        if aggregation == "last":
            self.check_no_ties(requests)
        extras = tuple(
            self.extra(raw, f"stripe_extras[{i}]", customers, cycles)
            for i, raw in enumerate(self.items(data.get("stripe_extras", []), "stripe_extras"))
        )
        if extras and aggregation != "sum":
            raise self.fail("stripe_extras", f'need aggregation "sum" (got {aggregation!r})')
        return Scenario(
            name=name,
            description=self.string(data["description"], "description"),
            seed=seed,
            cycles=cycles,
            interval="month",
            aggregation=aggregation,
            price=self.price(data["price"]),
            customers=customers,
            requests=tuple(requests),
            stripe_extras=extras,
        )

    def price(self, raw: Any) -> Price:
        table = self.table(raw, "price", {"currency", "unit_amount", "tiers_mode", "tiers"}, set())
        currency = self.string(
            table.get("currency", "usd"), "price.currency", re.compile("^[a-z]{3}$")
        )
        if ("unit_amount" in table) == ("tiers" in table or "tiers_mode" in table):
            raise self.fail("price", "give either unit_amount or tiers_mode with tiers")
        if "unit_amount" in table:
            return Price(
                currency, self.integer(table["unit_amount"], "price.unit_amount", 0, 10**8)
            )
        mode = cast(
            TiersMode, self.choice(table.get("tiers_mode"), "price.tiers_mode", TIERS_MODES)
        )
        tiers: list[Tier] = []
        raws = self.items(table.get("tiers"), "price.tiers")
        if not raws:
            raise self.fail("price.tiers", "needs at least one tier")
        for i, tier_raw in enumerate(raws):
            where = f"price.tiers[{i}]"
            tier = self.table(tier_raw, where, {"up_to", "unit_amount", "flat_amount"}, {"up_to"})
            last = i == len(raws) - 1
            if last and tier["up_to"] != "inf":
                raise self.fail(
                    f"{where}.up_to", f'the last tier\'s must be "inf" (got {tier["up_to"]!r})'
                )
            up_to = None if last else self.integer(tier["up_to"], f"{where}.up_to", 1, 10**12)
            if (
                up_to is not None
                and tiers
                and tiers[-1].up_to is not None
                and up_to <= tiers[-1].up_to
            ):
                raise self.fail(f"{where}.up_to", "must be above the previous tier's")
            tiers.append(
                Tier(
                    up_to,
                    self.integer(tier.get("unit_amount", 0), f"{where}.unit_amount", 0, 10**8),
                    self.integer(tier.get("flat_amount", 0), f"{where}.flat_amount", 0, 10**8),
                )
            )
        return Price(currency, None, mode, tuple(tiers))

    def customers(self, raw: Any, cycles: int) -> tuple[Customer, ...]:
        raws = self.items(raw, "customers")
        if not 1 <= len(raws) <= MAX_CUSTOMERS:
            raise self.fail("customers", f"1 to {MAX_CUSTOMERS} per test clock (got {len(raws)})")
        made: list[Customer] = []
        for i, item in enumerate(raws):
            where = f"customers[{i}]"
            table = self.table(item, where, {"name", "cancel_at_period_end_of"}, {"name"})
            name = self.string(table["name"], f"{where}.name", CUSTOMER_PATTERN)
            if name in (c.name for c in made):
                raise self.fail(f"{where}.name", f"{name!r} appears twice")
            cancel = table.get("cancel_at_period_end_of")
            if cancel is not None:
                cancel = self.integer(cancel, f"{where}.cancel_at_period_end_of", 1, cycles)
            made.append(Customer(name, cancel))
        return tuple(made)

    def request(
        self, raw: Any, where: str, customers: tuple[Customer, ...], cycles: int
    ) -> UsageRequest:
        allowed = {"cycle", "phase", "key", "after_writer", "sends", "events"}
        table = self.table(raw, where, allowed, {"cycle", "phase", "key", "events"})
        cycle = self.integer(table["cycle"], f"{where}.cycle", 1, cycles)
        phase = cast(Phase, self.choice(table["phase"], f"{where}.phase", PHASES))
        names = tuple(c.name for c in customers)
        events = []
        raws = self.items(table["events"], f"{where}.events")
        if not raws:
            raise self.fail(f"{where}.events", "needs at least one event")
        for j, event_raw in enumerate(raws):
            at = f"{where}.events[{j}]"
            event = self.table(
                event_raw,
                at,
                {"customer", "key", "quantity", "offset_s"},
                {"customer", "key", "quantity", "offset_s"},
            )
            customer = self.choice(event["customer"], f"{at}.customer", names)
            high = 0 if phase == "open" else -1
            events.append(
                UsageEvent(
                    customer=customer,
                    cycle=cycle,
                    phase=phase,
                    key=self.string(event["key"], f"{at}.key", KEY_PATTERN),
                    quantity=self.quantity(event["quantity"], f"{at}.quantity"),
                    offset_s=self.integer(event["offset_s"], f"{at}.offset_s", -DAY_S, high),
                )
            )
        return UsageRequest(
            cycle=cycle,
            phase=phase,
            key=self.string(table["key"], f"{where}.key", KEY_PATTERN),
            events=tuple(events),
            after_writer=self.boolean(table.get("after_writer", False), f"{where}.after_writer"),
            sends=self.integer(table.get("sends", 1), f"{where}.sends", 1, 5),
        )

    def stream(
        self, raw: Any, where: str, index: int, names: tuple[str, ...], cycles: int
    ) -> StreamSpec:
        allowed = {
            "phase", "cycles", "customers", "events", "quantity", "decimals",
            "duplicates", "retries", "late", "shuffle", "batch",
        }  # fmt: skip
        table = self.table(raw, where, allowed, {"events", "quantity"})
        chosen_cycles = tuple(
            self.integer(c, f"{where}.cycles", 1, cycles)
            for c in self.items(table.get("cycles", list(range(1, cycles + 1))), f"{where}.cycles")
        )
        chosen = tuple(
            self.choice(c, f"{where}.customers", names)
            for c in self.items(table.get("customers", list(names)), f"{where}.customers")
        )
        bounds = self.items(table["quantity"], f"{where}.quantity")
        if len(bounds) != 2:
            raise self.fail(f"{where}.quantity", "must be [min, max]")
        low = self.integer(bounds[0], f"{where}.quantity", 0, 10**6)
        high = self.integer(bounds[1], f"{where}.quantity", max(low, 1), 10**6)
        events = self.integer(table["events"], f"{where}.events", 1, 200)
        return StreamSpec(
            index=index,
            phase=cast(Phase, self.choice(table.get("phase", "open"), f"{where}.phase", PHASES)),
            cycles=chosen_cycles,
            customers=chosen,
            events=events,
            quantity_min=low,
            quantity_max=high,
            decimals=self.integer(table.get("decimals", 0), f"{where}.decimals", 0, 6),
            duplicates=self.integer(table.get("duplicates", 0), f"{where}.duplicates", 0, 200),
            retries=self.integer(table.get("retries", 0), f"{where}.retries", 0, 200),
            late=self.integer(table.get("late", 0), f"{where}.late", 0, events),
            shuffle=self.boolean(table.get("shuffle", True), f"{where}.shuffle"),
            batch=self.integer(table.get("batch", 10), f"{where}.batch", 1, 100),
        )

    def extra(
        self, raw: Any, where: str, customers: tuple[Customer, ...], cycles: int
    ) -> StripeExtra:
        keys = {"customer", "cycle", "quantity", "offset_s"}
        table = self.table(raw, where, keys, keys)
        names = tuple(c.name for c in customers)
        return StripeExtra(
            customer=self.choice(table["customer"], f"{where}.customer", names),
            cycle=self.integer(table["cycle"], f"{where}.cycle", 1, cycles),
            quantity=self.integer(table["quantity"], f"{where}.quantity", 1, 10**6),
            offset_s=self.integer(table["offset_s"], f"{where}.offset_s", -DAY_S, 0),
        )

    def check_no_ties(self, requests: list[UsageRequest]) -> None:
        """`last` bills the latest event: two distinct events of a customer's period at
        the same time would leave the bill to a tie-break, so a scenario has none."""
        seen: dict[tuple[str, int, tuple[int, int]], str] = {}
        first_of_key: set[str] = set()
        for request in requests:
            for event in request.events:
                if event.key in first_of_key:
                    continue
                first_of_key.add(event.key)
                at = (event.customer, event.cycle, event_time(event))
                if at in seen:
                    raise self.fail(
                        f"request {request.key}",
                        f"events {seen[at]} and {event.key} of {event.customer} are at the same "
                        "time; a last meter needs distinct times",
                    )
                seen[at] = event.key

    def check_cycles(
        self, requests: list[UsageRequest], customers: tuple[Customer, ...], cycles: int
    ) -> None:
        """Usage only while a customer is billed; post-close usage needs a next invoice."""
        last: Mapping[str, int] = {c.name: c.last_cycle(cycles) for c in customers}
        for request in requests:
            for event in request.events:
                if event.cycle > last[event.customer]:
                    raise self.fail(
                        f"request {request.key}",
                        f"event {event.key} of {event.customer} is in cycle {event.cycle}, "
                        f"after its subscription ends (cycle {last[event.customer]})",
                    )
                if event.phase == "post_close" and event.cycle == last[event.customer]:
                    raise self.fail(
                        f"request {request.key}",
                        f"post_close event {event.key} is in {event.customer}'s last cycle "
                        f"{event.cycle}: its correction would have no next invoice; add a cycle",
                    )
