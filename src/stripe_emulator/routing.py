"""Request context and the method+path router that maps Stripe URLs to handlers."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stripe_emulator.expand import check_expand
from stripe_emulator.params import Spec, validate
from stripe_emulator.store import Obj, Store


@dataclass
class Ctx:
    """What a handler sees: the store, path arguments and decoded (unvalidated) params."""

    store: Store
    method: str
    path: str
    args: tuple[str, ...]
    raw: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    def validate(self, specs: Mapping[str, Spec]) -> dict[str, Any]:
        """Validate the raw params against `specs`, keep and return the converted result."""
        self.params = validate(specs, self.raw)
        if self.params.get("expand"):
            check_expand(self.params["expand"])
        return self.params


Handler = Callable[[Ctx], Obj]


class Router:
    """Exact paths in a dict; paths with `{param}` segments as compiled regexes."""

    def __init__(self) -> None:
        self._static: dict[tuple[str, str], Handler] = {}
        self._dynamic: list[tuple[str, re.Pattern[str], Handler]] = []
        self._patterns: list[tuple[str, str]] = []

    def routes(self) -> list[tuple[str, str]]:
        """Every (method, pattern) served, in registration order (the README lists them)."""
        return list(self._patterns)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Register `handler` for `method` on `pattern` (e.g. `/v1/customers/{id}`)."""
        self._patterns.append((method, pattern))
        if "{" not in pattern:
            self._static[(method, pattern)] = handler
            return
        regex = re.sub(r"\{[a-z_]+\}", r"([^/]+)", pattern)
        self._dynamic.append((method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler, tuple[str, ...]] | None:
        """The handler and path arguments for a request, or None when not implemented."""
        handler = self._static.get((method, path))
        if handler is not None:
            return handler, ()
        for meth, regex, candidate in self._dynamic:
            if meth == method:
                found = regex.match(path)
                if found is not None:
                    return candidate, found.groups()
        return None
