"""Injected failures for tests (POST /_emulator/faults).

A rule fails the next `count` requests matching its method and path (exact, or a prefix
when the rule's path ends in `*`). Before commit, the request does not execute; with
`after_commit` it executes fully and the client is still told it failed, the hardest
case for exactly-once writers. `delay_ms` holds the response (and its idempotency key)
that long first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stripe_emulator.errors import StripeError

# 400 is a refusal of the request as a whole (Stripe's `invalid_request_error`): how a
# test makes the v2 stream refuse a batch whose events are each well formed.
ALLOWED_STATUSES = (400, 429, 500, 503)


@dataclass
class Fault:
    """One injection rule."""

    method: str
    path: str
    status: int
    count: int
    after_commit: bool
    delay_ms: int

    def matches(self, method: str, path: str) -> bool:
        """Whether a request hits this rule."""
        if self.method not in ("*", method):
            return False
        if self.path.endswith("*"):
            return path.startswith(self.path[:-1])
        return path == self.path


def parse_fault(body: Any) -> Fault:
    """Validate a rule from its JSON body; a 400 names the bad field."""
    if not isinstance(body, dict):
        raise StripeError(400, "Fault rule must be a JSON object", param="body")
    allowed = {"method", "path", "status", "count", "after_commit", "delay_ms"}
    for key in body:
        if key not in allowed:
            raise StripeError(400, f"Unknown fault field: {key}", param=key)
    method = body.get("method", "*")
    path = body.get("path")
    status = body.get("status")
    count = body.get("count", 1)
    after = body.get("after_commit", False)
    delay = body.get("delay_ms", 0)
    if not isinstance(method, str) or not method:
        raise StripeError(400, "method must be an HTTP method or '*'", param="method")
    if not isinstance(path, str) or not path.startswith("/"):
        raise StripeError(400, "path must be a string starting with '/'", param="path")
    if status not in ALLOWED_STATUSES:
        statuses = ", ".join(str(s) for s in ALLOWED_STATUSES)
        raise StripeError(400, f"status must be one of {statuses}", param="status")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise StripeError(400, "count must be a positive integer", param="count")
    if not isinstance(after, bool):
        raise StripeError(400, "after_commit must be a boolean", param="after_commit")
    if not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 60_000:
        raise StripeError(400, "delay_ms must be an integer in 0..60000", param="delay_ms")
    return Fault(method.upper(), path, int(status), count, after, delay)


class Faults:
    """The active rules of one emulator instance."""

    def __init__(self) -> None:
        self.rules: list[Fault] = []

    def add(self, fault: Fault) -> None:
        """Activate a rule (rules are consulted in the order added)."""
        self.rules.append(fault)

    def clear(self) -> None:
        """Drop every rule."""
        self.rules.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first matching rule, if any."""
        for rule in self.rules:
            if rule.matches(method, path):
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
                return rule
        return None

    def describe(self) -> list[dict[str, Any]]:
        """The remaining rules as JSON."""
        return [vars(rule).copy() for rule in self.rules]
