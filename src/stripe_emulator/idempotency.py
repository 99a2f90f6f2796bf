"""Idempotency keys on POST (facts §1.5).

The first status and body for a key are stored once the endpoint has started executing
and replayed byte for byte; the same key with another method, path or parameters is a
400 `idempotency_error`; a key whose first request is still executing is a 409
`idempotency_key_in_use`. Validation refusals (400/401/404) are not stored, so a
corrected retry runs. Keys are kept 24 h (Stripe's minimum), across restarts when the
emulator has a state file: `take_changes` tells persistence.py what to write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from stripe_emulator.errors import StripeError

MAX_KEY_LENGTH = 255
RETENTION_S = 24 * 3600  # facts §1.5: keys may be pruned once at least 24 h old
_PRUNE_EVERY = 10_000
_NOT_STORED = frozenset({400, 401, 404})


@dataclass(frozen=True)
class Stored:
    """A first response kept for replay."""

    fingerprint: bytes
    status: int
    body: bytes
    stored_at: float = field(default_factory=time.time)  # wall clock: survives restarts


def fingerprint(method: str, path: str, params: object) -> bytes:
    """What must match for a replay: endpoint plus parameters (order-insensitive)."""
    return orjson.dumps([method, path, params], option=orjson.OPT_SORT_KEYS)


class IdempotencyStore:
    """Stored first responses and in-flight keys of one emulator instance."""

    def __init__(self) -> None:
        self.done: dict[str, Stored] = {}
        self.in_flight: dict[str, bytes] = {}
        self._since_prune = 0
        self._added: list[str] = []
        self._dropped: list[str] = []

    def reset(self) -> None:
        """Forget every key."""
        self.done.clear()
        self.in_flight.clear()
        self._added.clear()
        self._dropped.clear()

    def take_changes(self) -> tuple[list[str], list[str]]:
        """Keys stored and keys pruned since the last call (for the state file)."""
        added, dropped = self._added, self._dropped
        self._added, self._dropped = [], []
        return added, dropped

    def lookup(self, key: str, fp: bytes) -> Stored | None:
        """The stored response to replay, None to execute; raises on misuse of the key."""
        if len(key) > MAX_KEY_LENGTH:
            raise StripeError(
                400,
                f"Idempotency-Key must be at most {MAX_KEY_LENGTH} characters long.",
                param="Idempotency-Key",
            )
        if key in self.in_flight:
            raise StripeError(
                409,
                "There is currently another in-progress request using this Stripe "
                f"Idempotency-Key ('{key}'). Please try again later.",
                code="idempotency_key_in_use",
            )
        stored = self.done.get(key)
        if stored is not None and stored.fingerprint != fp:
            # Message wording [inferred] facts §1.5.
            raise StripeError(
                400,
                "Keys for idempotent requests can only be used with the same parameters "
                f"they were first used with. Try using a key other than '{key}' if you "
                "meant to execute a different request.",
                type_="idempotency_error",
            )
        return stored

    def begin(self, key: str, fp: bytes) -> None:
        """Mark the key as executing."""
        self.in_flight[key] = fp

    def finish(self, key: str, status: int, body: bytes) -> None:
        """Release the key, keeping the response unless it was a validation refusal."""
        fp = self.in_flight.pop(key, None)
        if fp is not None and status not in _NOT_STORED:
            self.done[key] = Stored(fp, status, body)
            self._added.append(key)
            self._since_prune += 1
            if self._since_prune >= _PRUNE_EVERY:
                self.prune()

    def prune(self, now: float | None = None) -> None:
        """Forget keys stored more than 24 h ago (bounded memory for long runs)."""
        cutoff = (time.time() if now is None else now) - RETENTION_S
        # Insertion order is storage order, so the old keys form a prefix.
        expired = []
        for key, stored in self.done.items():
            if stored.stored_at > cutoff:
                break
            expired.append(key)
        for key in expired:
            del self.done[key]
        self._dropped.extend(expired)
        self._since_prune = 0

    def abandon(self, key: str) -> None:
        """Release the key without storing anything (failure before execution)."""
        self.in_flight.pop(key, None)
