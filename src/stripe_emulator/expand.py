"""`expand[]`: replace id strings by the objects they name, along dotted paths (facts §1.9)."""

from __future__ import annotations

from typing import Any

from stripe_emulator.errors import invalid
from stripe_emulator.store import Obj, Store, public

MAX_DEPTH = 4
# Every field name that can sit on an expandable path of the objects we serve; checked
# before a request executes so a typo in `expand` never follows a committed change.
_FIELDS = frozenset(
    {
        "customer", "latest_invoice", "test_clock", "default_payment_method", "invoice_settings",
        "items", "data", "lines", "price", "product", "subscription", "invoice",
        "payment_method", "meter", "plan", "parent", "pricing", "price_details",
        "subscription_details", "subscription_item_details", "subscription_item", "recurring",
        "default_price", "default_source", "schedule", "pending_setup_intent", "discounts",
    }
)  # fmt: skip


def check_expand(paths: list[str]) -> None:
    """Refuse unknown or too deep expand paths up front (before any side effect)."""
    for path in paths:
        parts = path.split(".")
        if len([p for p in parts if p != "data"]) > MAX_DEPTH:
            raise invalid(
                f"You cannot expand more than {MAX_DEPTH} levels of a property. Property: {path}",
                param="expand",
            )
        if any(part not in _FIELDS for part in parts):
            raise invalid(f"This property cannot be expanded ({path}).", param="expand")


def apply_expand(body: Obj, paths: list[str], store: Store) -> None:
    """Expand each dotted path of `paths` in `body` in place; unknown paths give a 400."""
    check_expand(paths)
    for path in paths:
        _expand(body, path.split("."), store, path)


def _expand(node: Any, parts: list[str], store: Store, full: str) -> None:
    if isinstance(node, list):
        for element in node:
            _expand(element, parts, store, full)
        return
    key = parts[0]
    if not isinstance(node, dict) or key not in node:
        raise invalid(f"This property cannot be expanded ({full}).", param="expand")
    value = node[key]
    if isinstance(value, str):
        target = store.index.get(value)
        if target is None:
            raise invalid(f"This property cannot be expanded ({full}).", param="expand")
        value = public(target)
        node[key] = value
    if len(parts) > 1 and value is not None:
        _expand(value, parts[1:], store, full)
