"""Stripe list objects: newest first, `limit` 1-100 (default 10), cursor pagination.

The SDK's `auto_paging_iter()` calls the list's relative `url` again with
`starting_after=<last id>` while `has_more` is true (facts §1.8).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from stripe_emulator.errors import invalid, invalid_integer, not_found
from stripe_emulator.store import Obj


def list_object(data: list[Obj], url: str, has_more: bool = False) -> Obj:
    """A `{"object": "list", ...}` envelope."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def in_range(value: int | None, bounds: dict[str, int] | None) -> bool:
    """Whether `value` passes a `CREATED`-style filter (`eq`/`gt`/`gte`/`lt`/`lte`)."""
    if not bounds:
        return True
    if value is None:
        return False
    checks = {
        "eq": value.__eq__,
        "gt": value.__gt__,
        "gte": value.__ge__,
        "lt": value.__lt__,
        "lte": value.__le__,
    }
    return all(checks[op](bound) for op, bound in bounds.items() if bound is not None)


def paginate(
    objs: Iterable[Obj], params: dict[str, Any], url: str, *, kind: str, presorted: bool = False
) -> Obj:
    """One page of `objs`, newest first unless `presorted`, per limit and cursors."""
    # Stored objects iterate in insertion (= creation) order, so reversing is newest first.
    items = list(objs) if presorted else list(objs)[::-1]
    limit = params.get("limit")
    if limit is None:
        limit = 10
    if limit < 1:
        raise invalid_integer("limit", "This value must be greater than or equal to 1.")
    if limit > 100:
        raise invalid_integer("limit", "This value must be less than or equal to 100.")
    after, before = params.get("starting_after"), params.get("ending_before")
    if after and before:
        raise invalid(
            "You may only specify one of these parameters: starting_after, ending_before.",
            param="starting_after",
            code="parameters_exclusive",
        )
    if after:
        pos = _position(items, after, kind, "starting_after")
        rest = items[pos + 1 :]
        return list_object(rest[:limit], url, len(rest) > limit)
    if before:
        pos = _position(items, before, kind, "ending_before")
        head = items[:pos]
        return list_object(head[-limit:], url, len(head) > limit)
    return list_object(items[:limit], url, len(items) > limit)


def _position(items: list[Obj], cursor: str, kind: str, param: str) -> int:
    for pos, obj in enumerate(items):
        if obj.get("id") == cursor:
            return pos
    raise not_found(kind, cursor, param=param)
