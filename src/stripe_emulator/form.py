"""Decode Stripe's form encoding (`a[b]=c`, `a[0]=x`, `a[]=x`) into nested dicts and lists.

The SDK always indexes arrays (`expand[0]=x`) while curl users write `expand[]=x`; query
strings arrive percent-encoded (`expand%5B0%5D=x`) and bodies with literal brackets
(facts §1.3). Both forms decode to the same structure: dicts for named keys, lists for
indexed or `[]` keys (ordered by index).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from stripe_emulator.errors import invalid

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")

FormValue = str | dict[str, Any] | list[Any]


class _Seq:
    """A list under construction: explicit indexes plus `[]` appends, in arrival order."""

    def __init__(self) -> None:
        self.items: dict[int, Any] = {}
        self.next_append = 0

    def slot(self, key: str) -> int:
        if key == "":
            while self.next_append in self.items:
                self.next_append += 1
            return self.next_append
        return int(key)


def parse_form(raw: str) -> dict[str, Any]:
    """Parse an urlencoded string into nested params; malformed keys give a 400."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise invalid(f"Invalid parameter name: {key}", param=key)
        path = [match.group(1), *_PART.findall(match.group(2))]
        _assign(root, path, value, key)
    return _finish(root)  # type: ignore[return-value]


def _assign(root: dict[str, Any], path: list[str], value: str, full: str) -> None:
    node: Any = root
    for i, part in enumerate(path):
        last = i == len(path) - 1
        nxt_is_seq = not last and (path[i + 1] == "" or path[i + 1].isdigit())
        if isinstance(node, _Seq):
            if part != "" and not part.isdigit():
                raise invalid(f"Invalid array index in parameter {full}", param=full)
            idx = node.slot(part)
            reuse = node.next_append - 1
            if part == "" and not last and reuse in node.items:
                # curl style `items[][price]=a&items[][quantity]=1`: a key not yet set on
                # the last element continues that element (Rack's rule).
                prev = node.items[reuse]
                if isinstance(prev, dict) and path[i + 1] not in prev:
                    idx = reuse
            container: dict[Any, Any] = node.items
            key: Any = idx
        else:
            if part == "":
                raise invalid(f"Invalid parameter name: {full}", param=full)
            container = node
            key = part
        if last:
            if key in container and not isinstance(container[key], str):
                raise invalid(f"Conflicting values for parameter {full}", param=full)
            container[key] = value
            if isinstance(node, _Seq) and part == "":
                node.next_append = idx + 1
            return
        child = container.get(key)
        if child is None:
            child = _Seq() if nxt_is_seq else {}
            container[key] = child
            if isinstance(node, _Seq) and part == "":
                node.next_append = idx + 1
        elif isinstance(child, str) or (isinstance(child, _Seq) != nxt_is_seq):
            raise invalid(f"Conflicting values for parameter {full}", param=full)
        node = child


def _finish(node: Any) -> FormValue:
    if isinstance(node, _Seq):
        return [_finish(node.items[k]) for k in sorted(node.items)]
    if isinstance(node, dict):
        return {k: _finish(v) for k, v in node.items()}
    return node  # type: ignore[no-any-return]
