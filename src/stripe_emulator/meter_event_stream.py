"""The v2 meter event stream: sessions and batched meter events (docs/writer-transports.md).

- `POST /v2/billing/meter_event_session` (a secret key) -> `v2.billing.meter_event_session`
  with an `authentication_token` valid `SESSION_TTL_S` (Stripe: 15 minutes).
- `POST /v2/billing/meter_event_stream` (`Authorization: Bearer <session token>`, served
  on the same address as everything else: the SDK's `meter_events` base is set to it) with
  JSON `{"events": [...]}` of 1..100 events -> `{}`.

Stripe validates stream events asynchronously: the request is refused only for its shape
(not JSON, unknown or missing fields, more than 100 events, a timestamp that is not
ISO 8601), and each event's content (meter, customer, value, timestamp window, identifier
already used) is checked afterwards. The emulator checks the content at once with the
very rules of `POST /v1/billing/meter_events` (`meter_events.record`, one store and one
identifier window for both) and keeps each dropped event with its reason in
`store.stream_rejections` (`GET /_emulator/meter_event_stream/rejections`) where Stripe
would raise a meter error report. An expired token is Stripe's 401
`temporary_session_expired` / `billing_meter_event_session_expired`; an unknown one a
401 like an unknown key ([inferred]). `POST /_emulator/meter_event_stream/expire` ends
every session now (tests of renewal).
"""

from __future__ import annotations

from datetime import UTC, datetime

from stripe_emulator.errors import StripeError, invalid
from stripe_emulator.meter_events import record
from stripe_emulator.params import lst, m, o, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, random_token, real_now

SESSION_PATH = "/v2/billing/meter_event_session"
STREAM_PATH = "/v2/billing/meter_event_stream"
SESSION_TTL_S = 15 * 60  # docs: "Authentication tokens are only valid for 15 minutes"
MAX_EVENTS = 100  # docs: "Supports up to 100 events per request"

STREAM = {
    "events": lst(
        o(
            {
                "event_name": s(required=True),
                "identifier": s(),
                "payload": m(required=True),
                "timestamp": s(),
            }
        ),
        required=True,
    )
}


def iso(ts: int) -> str:
    """Unix seconds as API v2 writes times: `2024-06-01T12:15:00.000Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _unix(text: str, param: str) -> int:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(
            f"Invalid {param}: expected an ISO 8601 time such as 2024-06-01T12:00:00.000Z.",
            param=param,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def check_session(store: Store, headers: dict[str, str]) -> None:
    """Let a stream request in only with a live session token as its bearer."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    expires_at = store.stream_sessions.get(token) if scheme.lower() == "bearer" else None
    if expires_at is None:
        raise StripeError(
            401,
            "Invalid meter event session token provided. Create a meter event session "
            f"(POST {SESSION_PATH}) and send its authentication_token as the bearer.",
        )
    if real_now() >= expires_at:
        raise StripeError(
            401,
            "The temporary session token has expired.",
            type_="temporary_session_expired",
            code="billing_meter_event_session_expired",
        )


def create_session(ctx: Ctx) -> Obj:
    """POST /v2/billing/meter_event_session (no parameters)."""
    ctx.validate({})
    now = real_now()
    token = f"mes_test_{random_token(32)}"
    expires_at = now + SESSION_TTL_S
    ctx.store.stream_sessions[token] = expires_at
    return {
        "id": f"mes_{random_token(20)}",
        "object": "v2.billing.meter_event_session",
        "authentication_token": token,
        "created": iso(now),
        "expires_at": iso(expires_at),
        "livemode": False,
    }


def stream(ctx: Ctx) -> Obj:
    """POST /v2/billing/meter_event_stream: the shape synchronously, each event after."""
    p = ctx.validate(STREAM)
    events = p["events"]
    if not 1 <= len(events) <= MAX_EVENTS:
        raise invalid(
            f"events must hold 1 to {MAX_EVENTS} meter events (got {len(events)}); "
            "split the batch.",
            param="events",
        )
    converted = []
    for n, event in enumerate(events):
        one = dict(event)
        if one.get("timestamp") is not None:
            one["timestamp"] = _unix(one["timestamp"], f"events[{n}][timestamp]")
        converted.append(one)
    for one in converted:
        try:
            record(ctx.store, one)
        except StripeError as refused:
            ctx.store.stream_rejections.append(
                {
                    "identifier": one.get("identifier"),
                    "event_name": one["event_name"],
                    "code": refused.code,
                    "message": refused.message,
                }
            )
    return {}


def expire_sessions(store: Store) -> int:
    """End every session now; how many there were."""
    for token in store.stream_sessions:
        store.stream_sessions[token] = 0
    return len(store.stream_sessions)


def register(router: Router) -> None:
    """Mount the session and stream routes."""
    router.add("POST", SESSION_PATH, create_session)
    router.add("POST", STREAM_PATH, stream)
