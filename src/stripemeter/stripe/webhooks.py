"""Stripe webhooks at the seam: signature verification and endpoint registration.

- `verify_event(payload, header, secret)`: the SDK's `WebhookSignature.verify_header` on
  the raw body (what `stripe.Webhook.construct_event` runs before it builds a v1 Event),
  so the HMAC, the timestamp tolerance and Stripe's error messages are the SDK's. Not
  `construct_event` itself: it refuses v2 thin events (`object: v2.core.event`), and the
  meter error report is one. The verified body comes back as plain JSON (a dict).
- `register_endpoint(gateway, url, events)`: `POST /v1/webhook_endpoints` through the
  gateway's retries, unless an endpoint with the same URL exists (then that one is
  returned and nothing is created: Stripe shows the secret only on creation).

They live here because only `stripemeter.stripe` imports the SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import stripe

from stripemeter.errors import WebhookPayloadError, WebhookSignatureError
from stripemeter.stripe.gateway import StripeGateway

# What `webhooks setup` subscribes the endpoint to. Meter error reports are not among
# them: Stripe sends them only as the v2 thin event `v1.billing.meter.error_report_triggered`
# to an event destination (a v1 webhook endpoint refuses that name); the route accepts
# one, signed with the same secret, but `setup` cannot register it.
EventType = Literal["invoice.created", "invoice.finalized", "test_helpers.test_clock.ready"]
ENABLED_EVENTS: tuple[EventType, ...] = (
    "invoice.created",
    "invoice.finalized",
    "test_helpers.test_clock.ready",  # keeps clock customers' time fresh (stripemeter.clocks)
)


def verify_event(
    payload: bytes, signature: str | None, secret: str, *, tolerance_s: int = 300
) -> dict[str, Any]:
    """The verified event as JSON; WebhookSignatureError or WebhookPayloadError otherwise."""
    if not signature:
        raise WebhookSignatureError(
            "No Stripe-Signature header: is this request coming from Stripe?"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookPayloadError("the webhook body is not UTF-8 text") from None
    try:
        stripe.WebhookSignature.verify_header(text, signature, secret, tolerance_s)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureError(str(exc.user_message or exc)) from None
    try:
        event = json.loads(text)
    except ValueError:
        raise WebhookPayloadError("the webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookPayloadError("the webhook body is not a JSON object")
    for key in ("id", "type"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise WebhookPayloadError(f"the event has no {key!r}: not a Stripe event")
    return event


@dataclass(frozen=True)
class Endpoint:
    """A webhook endpoint as Stripe holds it; `secret` only when just created."""

    id: str
    url: str
    enabled_events: tuple[str, ...]
    status: str
    secret: str | None


def _endpoint(obj: Any, *, with_secret: bool) -> Endpoint:
    return Endpoint(
        id=str(obj.id),
        url=str(obj.url),
        enabled_events=tuple(obj.enabled_events or ()),
        status=str(obj.status),
        secret=str(obj.secret) if with_secret and getattr(obj, "secret", None) else None,
    )


def find_endpoint(gateway: StripeGateway, url: str) -> Endpoint | None:
    """The endpoint already registered for `url`, if any."""
    page = gateway._call(  # the gateway's retries and cap, same package
        "list webhook endpoints",
        lambda *_: gateway.client.v1.webhook_endpoints.list({"limit": 100}),
    )
    for obj in page.auto_paging_iter():
        if obj.url == url:
            return _endpoint(obj, with_secret=False)
    return None


def register_endpoint(
    gateway: StripeGateway,
    url: str,
    events: tuple[EventType, ...] = ENABLED_EVENTS,
) -> tuple[Endpoint, bool]:
    """(the endpoint for `url`, whether this call created it). Raises GatewayError."""
    existing = find_endpoint(gateway, url)
    if existing is not None:
        return existing, False
    created = gateway._call(
        f"create webhook endpoint {url}",
        lambda *_: gateway.client.v1.webhook_endpoints.create(
            {
                "url": url,
                "enabled_events": list(events),
                "description": "stripemeter: flush on invoice.created, reconcile on finalized",
            }
        ),
    )
    return _endpoint(created, with_secret=True), True
