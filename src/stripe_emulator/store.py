"""In-memory state of one emulator instance: every Stripe object, indexed by type and id.

Objects are stored as their public JSON dicts; keys starting with `_` are internal
(sequence numbers, advance schedules, cancellation marks) and are stripped by `public`.
Ordering for lists is the insertion sequence, so "newest first" is well defined even
when many objects share a `created` second.

With a state file attached (`backing`, see persistence.py) the store also notes, for the
next `commit()`, every object it inserted, removed or handed out through `by_type`,
`index` or `identifiers` (handlers mutate objects in place, so whatever was handed out
may have changed). Code that mutates a stored object it kept from an earlier request
must hand it to `touch()`; code that changes state outside a request must `commit()`;
objects enter and leave only through `insert` and `remove`.
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from stripe_emulator.errors import not_found

if TYPE_CHECKING:
    from stripe_emulator.persistence import StateFile

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
    "invoiceitems",
    "credit_notes",
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


class _Noting(dict[str, Obj]):
    """A dict that notes each value it hands out (the store's commit candidates)."""

    __slots__ = ("_noted",)

    def __init__(self, noted: list[Obj]) -> None:
        super().__init__()
        self._noted = noted

    def __getitem__(self, key: str) -> Obj:
        value = super().__getitem__(key)
        self._noted.append(value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        if value is not None and value is not default:
            self._noted.append(value)
        return value

    def values(self) -> Any:
        self._noted.extend(super().values())
        return super().values()

    def items(self) -> Any:
        self._noted.extend(super().values())
        return super().items()


class Store:
    """All objects of one emulator instance."""

    def __init__(self, advance_delay_s: float = 0.5) -> None:
        self.advance_delay_s = advance_delay_s
        self.by_type: dict[str, dict[str, Obj]] = {}
        self.index: dict[str, Obj] = {}
        self.identifiers: dict[str, Obj] = {}
        self.usage: dict[tuple[str, str], list[Obj]] = {}
        self.stream_sessions: dict[str, int] = {}
        self.stream_rejections: list[Obj] = []
        self.backing: StateFile | None = None
        # Persistence bookkeeping: where each stored object lives (by identity), and
        # what to look at / delete at the next commit.
        self.where: dict[int, tuple[str, str]] = {}
        self._touched: list[Obj] = []
        self._removed: list[tuple[str, str]] = []
        self._seq = 0
        self._clear_memory()

    def _clear_memory(self) -> None:
        noted = self._touched
        self.by_type = {t: _Noting(noted) for t in TYPES}
        self.index = _Noting(noted)
        self.identifiers = _Noting(noted)
        self.usage = {}
        # The v2 meter event stream (meter_event_stream.py): session token -> expires_at,
        # and the events it accepted but dropped (Stripe validates them asynchronously).
        # In memory only: after a restart a token is unknown and the client renews it.
        self.stream_sessions = {}
        self.stream_rejections = []
        self.where = {}
        self._removed = []
        noted.clear()
        self._seq = 0

    def reset(self) -> None:
        """Forget everything, on disk too (POST /_emulator/reset)."""
        self._clear_memory()
        if self.backing is not None:
            self.backing.clear()

    @property
    def seq(self) -> int:
        """The last list-order sequence number handed out."""
        return self._seq

    def commit(self) -> None:
        """Make every change so far durable (no-op without a state file)."""
        if self.backing is not None:
            self.backing.commit(self)
        else:
            self._touched.clear()
            self._removed.clear()

    def touch(self, obj: Obj) -> None:
        """Note an object mutated without being fetched from the store in this request."""
        self._touched.append(obj)

    def take_touched(self) -> list[Obj]:
        """The objects noted since the last call (persistence.py)."""
        out = list(self._touched)
        self._touched.clear()
        return out

    def take_removed(self) -> list[tuple[str, str]]:
        """(type, key) of the objects removed since the last call (persistence.py)."""
        out, self._removed = self._removed, []
        return out

    def location(self, obj: Obj) -> tuple[str, str] | None:
        """(type, key) when `obj` itself is a stored object (identity, not equality)."""
        loc = self.where.get(id(obj))
        if loc is None:
            return None
        objs = self.by_type.get(loc[0])
        if objs is None or dict.get(objs, loc[1]) is not obj:
            return None  # left the store without `remove`; its id may be reused
        return loc

    def restore(self, type_: str, key: str, obj: Obj) -> None:
        """Put back an object read from disk, in its original list position."""
        self.by_type.setdefault(type_, _Noting(self._touched))[key] = obj
        if "id" in obj:
            self.index[obj["id"]] = obj
        self.where[id(obj)] = (type_, key)
        if type_ == "meter_events":
            self.identifiers[obj["identifier"]] = obj
            self.usage.setdefault((obj["_meter"], obj["_customer"]), []).append(obj)

    def restore_seq(self, seq: int) -> None:
        """Put back the sequence counter read from disk."""
        self._seq = seq

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
        old = dict.get(self.by_type[type_], k)
        if old is not None and old is not obj:
            self.where.pop(id(old), None)
        self.by_type[type_][k] = obj
        if "id" in obj:
            self.index[obj["id"]] = obj
        self.where[id(obj)] = (type_, k)
        self._touched.append(obj)
        return obj

    def remove(self, type_: str, obj_id: str) -> None:
        """Delete an object by id (cascades are the caller's job)."""
        obj = self.by_type[type_].pop(obj_id, None)
        self.index.pop(obj_id, None)
        if obj is not None:
            self.where.pop(id(obj), None)
            self._removed.append((type_, obj_id))

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
