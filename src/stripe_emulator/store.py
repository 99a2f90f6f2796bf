"""In-memory state of one emulator instance: every Stripe object, indexed by type and id.

Objects are stored as their public JSON dicts; keys starting with `_` are internal
(sequence numbers, advance schedules, cancellation marks) and are stripped by `public`.
Ordering for lists is the insertion sequence, so "newest first" is well defined even
when many objects share a `created` second.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable
from typing import Any

from stripe_emulator.errors import not_found

Obj = dict[str, Any]

TYPES = (
    "test_clocks",
    "customers",
    "payment_methods",
    "products",
    "prices",
    "meters",
    "meter_events",
    "meter_event_adjustments",
    "subscriptions",
    "subscription_items",
    "invoices",
    "events",
    "webhook_endpoints",
)
_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int = 24) -> str:
    """Random alphanumerics in the style of Stripe ids."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def real_now() -> int:
    """Wall-clock Unix seconds."""
    return int(time.time())


def public(obj: Obj) -> Obj:
    """A copy of the object without internal (`_`-prefixed) keys, at any depth."""
    return {k: _strip(v) for k, v in obj.items() if not k.startswith("_")}


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return public(value)
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


class Store:
    """All objects of one emulator instance."""

    def __init__(self, advance_delay_s: float = 0.5) -> None:
        self.advance_delay_s = advance_delay_s
        self.by_type: dict[str, dict[str, Obj]] = {}
        self.index: dict[str, Obj] = {}
        self.identifiers: dict[str, Obj] = {}
        self.usage: dict[tuple[str, str], list[Obj]] = {}
        self._seq = 0
        self.reset()

    def reset(self) -> None:
        """Forget everything (POST /_emulator/reset)."""
        self.by_type = {t: {} for t in TYPES}
        self.index = {}
        self.identifiers = {}
        self.usage = {}
        self._seq = 0

    def new_id(self, prefix: str) -> str:
        """A fresh id such as `cus_...`."""
        while True:
            obj_id = f"{prefix}_{random_token(14)}"
            if obj_id not in self.index:
                return obj_id

    def insert(self, type_: str, obj: Obj, key: str | None = None) -> Obj:
        """Store `obj` under its id (or `key`) and stamp its list-order sequence."""
        self._seq += 1
        obj["_seq"] = self._seq
        k = key or obj["id"]
        self.by_type[type_][k] = obj
        if "id" in obj:
            self.index[obj["id"]] = obj
        return obj

    def remove(self, type_: str, obj_id: str) -> None:
        """Delete an object by id (cascades are the caller's job)."""
        self.by_type[type_].pop(obj_id, None)
        self.index.pop(obj_id, None)

    def get(self, type_: str, obj_id: str, kind: str, param: str = "id") -> Obj:
        """The object or a 404 resource_missing naming it."""
        obj = self.by_type[type_].get(obj_id)
        if obj is None:
            raise not_found(kind, obj_id, param=param)
        return obj

    def all(self, type_: str) -> Iterable[Obj]:
        """Every object of a type, oldest first."""
        return self.by_type[type_].values()

    def clock_of(self, customer: Obj | None) -> Obj | None:
        """The test clock a customer is on, if any."""
        if customer is None or not customer.get("test_clock"):
            return None
        return self.by_type["test_clocks"].get(customer["test_clock"])

    def now_for(self, customer: Obj | None) -> int:
        """'Now' as the customer sees it: its clock's frozen_time, else the wall clock."""
        clock = self.clock_of(customer)
        return int(clock["frozen_time"]) if clock is not None else real_now()

    def dump(self) -> dict[str, list[Obj]]:
        """Everything, keyed by plural type, oldest first (GET /_emulator/state)."""
        out: dict[str, list[Obj]] = {}
        for type_, objs in self.by_type.items():
            rows = []
            for obj in objs.values():
                row = public(obj)
                if type_ == "meter_events":
                    row["cancelled"] = bool(obj.get("_cancelled"))
                    row["customer"] = obj.get("_customer")
                    row["meter"] = obj.get("_meter")
                rows.append(row)
            out[type_] = rows
        return out
