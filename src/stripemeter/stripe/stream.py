"""The v2 meter event stream at the seam: session tokens and batched sends.

Stripe's high-throughput path (docs/writer-transports.md has the facts and their
sources): `POST /v2/billing/meter_event_session` with the secret key gives an
`authentication_token` valid 15 minutes; `POST /v2/billing/meter_event_stream` on the
`meter_events` base address (meter-events.stripe.com, or our emulator's address, see
`stripemeter.stripe.client.make_client`) takes up to 100 events per request with that
token as the bearer and answers `{}`: each event is validated afterwards, asynchronously.

- `StreamEvent`: one event as the stream takes it (Unix timestamp, string payload).
- `MeterEventSessions`: one client's cached token, renewed `RENEW_BEFORE_S` before it
  expires, and once more when Stripe calls it expired or unknown anyway.
- `send_batch`: one stream request through the gateway's retries and call cap.

The gateway's `send_meter_event_batch` is the entry point; this module keeps
`stripemeter.stripe.gateway` to the v1 calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import stripe

from stripemeter.errors import StripeKeyRefused, StripeRefused

T = TypeVar("T")


class Call(Protocol):
    """A gateway's `_call`: `fn(attempt, after_server_error)` with retries and the cap."""

    def __call__(self, what: str, fn: Callable[[int, bool], T]) -> T: ...


MAX_EVENTS_PER_REQUEST = 100  # Stripe: "Supports up to 100 events per request"
SESSION_TTL_S = 15 * 60  # Stripe: "Authentication tokens are only valid for 15 minutes"
# A token this close to its expiry is replaced before use: a request (with its retries)
# sent on it could otherwise outlive it.
RENEW_BEFORE_S = 120
SESSION_EXPIRED_CODE = "billing_meter_event_session_expired"


@dataclass(frozen=True)
class StreamEvent:
    """One meter event for the stream."""

    event_name: str
    identifier: str
    timestamp: int
    payload: dict[str, str]

    def wire(self) -> dict[str, object]:
        """The event as the stream's JSON takes it (an ISO 8601 timestamp)."""
        when = datetime.fromtimestamp(self.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {
            "event_name": self.event_name,
            "identifier": self.identifier,
            "timestamp": when,
            "payload": dict(self.payload),
        }


def _expiry(text: str, created_at: float) -> float:
    """Unix seconds of a session's `expires_at`, never later than our own 15 minutes."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return created_at + SESSION_TTL_S
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return min(parsed.timestamp(), created_at + SESSION_TTL_S)


class MeterEventSessions:
    """The current session token of one Stripe client (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.created = 0  # sessions created so far (tests, the bench)

    def token(self, create: Callable[[], tuple[str, str]]) -> str:
        """A token with more than `RENEW_BEFORE_S` to live; `create()` -> (token, expires_at)."""
        with self._lock:
            now = self._clock()
            if self._token is None or self._expires_at - now <= RENEW_BEFORE_S:
                token, expires_at = create()
                self._token, self._expires_at = token, _expiry(expires_at, now)
                self.created += 1
            return self._token

    def drop(self, token: str) -> None:
        """Forget `token` (Stripe called it expired or unknown) if it is still current."""
        with self._lock:
            if self._token == token:
                self._token, self._expires_at = None, 0.0


def _session_refused(exc: StripeRefused) -> bool:
    return isinstance(exc, StripeKeyRefused) or exc.code == SESSION_EXPIRED_CODE


def send_batch(
    client: stripe.StripeClient,
    sessions: MeterEventSessions,
    call: Call,
    events: Sequence[StreamEvent],
    idempotency_key: Callable[[str], str],
) -> None:
    """Send 1..100 events in one stream request; raises the gateway's errors.

    `idempotency_key(tag)` as for v1 meter events (a fresh tag after a 5xx). A token
    Stripe refuses as expired or unknown is replaced once and the request sent again;
    a second refusal is raised (the key itself is then wrong).
    """
    if not 1 <= len(events) <= MAX_EVENTS_PER_REQUEST:
        raise ValueError(f"a stream request holds 1..{MAX_EVENTS_PER_REQUEST} events")
    body = {"events": [event.wire() for event in events]}

    def new_session() -> tuple[str, str]:
        def create(attempt: int, after_5xx: bool) -> tuple[str, str]:
            session = client.v2.billing.meter_event_session.create()
            return session.authentication_token, session.expires_at

        return call("create a meter event session", create)

    what = f"meter event stream ({len(events)} events, first {events[0].identifier})"
    for renewal in range(2):
        token = sessions.token(new_session)

        def send(attempt: int, after_5xx: bool, token: str = token) -> None:
            key = idempotency_key(f"r{attempt}" if after_5xx else "")
            client.v2.billing.meter_event_stream.create(
                body,  # type: ignore[arg-type]
                {"api_key": token, "idempotency_key": key},
            )

        try:
            call(what, send)
            return
        except StripeRefused as exc:
            if not _session_refused(exc) or renewal:
                raise
            sessions.drop(token)
