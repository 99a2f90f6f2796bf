"""Control endpoints for tests, outside `/v1` and without auth.

- `GET /_emulator/health` -> `{"status": "ok"}`
- `POST /_emulator/reset` forgets all objects (webhook endpoints and events included),
  idempotency keys and faults, and stops pending webhook deliveries and retries
- `POST /_emulator/faults` adds a rule (see faults.py); `GET` lists, `DELETE` clears
- `GET /_emulator/state` dumps every object keyed by plural type
- `POST /_emulator/meter_event_stream/expire` ends every v2 meter event session now;
  `GET /_emulator/meter_event_stream/rejections` lists the stream events dropped, with why
- `POST /_emulator/webhook_endpoints` registers an endpoint exactly as `POST
  /v1/webhook_endpoints` (JSON object or form body; the answer carries the `secret`)
- `GET /_emulator/webhook_deliveries` lists every delivery attempt, oldest first
- `GET`/`POST /_emulator/webhook_settings` shows/changes retry timing (webhooks.Settings;
  configuration, so kept across reset)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from stripe_emulator import billing, meter_event_stream, webhooks
from stripe_emulator.errors import StripeError
from stripe_emulator.faults import parse_fault
from stripe_emulator.form import parse_form
from stripe_emulator.routing import Ctx
from stripe_emulator.store import public

if TYPE_CHECKING:
    from stripe_emulator.app import Emulator


def handle(emu: Emulator, method: str, path: str, body: bytes) -> tuple[int, Any]:
    """Answer one control request with (status, JSON-able body)."""
    route = (method, path)
    webhooks.kick(emu.store)  # resumes deliveries queued before a restart, if any
    if route == ("GET", "/_emulator/health"):
        return 200, {"status": "ok"}
    if route == ("POST", "/_emulator/reset"):
        webhooks.stop(emu.store)
        emu.store.reset()
        emu.idempotency.reset()
        emu.faults.clear()
        return 200, {"status": "ok"}
    if route == ("POST", "/_emulator/meter_event_stream/expire"):
        return 200, {"expired": meter_event_stream.expire_sessions(emu.store)}
    if route == ("GET", "/_emulator/meter_event_stream/rejections"):
        return 200, {"data": list(emu.store.stream_rejections)}
    if route == ("GET", "/_emulator/state"):
        billing.tick(emu.store)
        return 200, emu.store.dump()
    if route == ("POST", "/_emulator/webhook_endpoints"):
        ctx = Ctx(emu.store, "POST", "/v1/webhook_endpoints", (), _params(body))
        return 200, public(webhooks.create(ctx))
    if route == ("GET", "/_emulator/webhook_deliveries"):
        return 200, {"deliveries": webhooks.delivery_rows(emu.store)}
    if path == "/_emulator/webhook_settings":
        if method == "GET":
            return 200, webhooks.configure(emu.store, {})
        if method == "POST":
            return 200, webhooks.configure(emu.store, _json_body(body, "Webhook settings"))
    if path == "/_emulator/faults":
        if method == "GET":
            return 200, {"faults": emu.faults.describe()}
        if method == "DELETE":
            emu.faults.clear()
            return 200, {"faults": []}
        if method == "POST":
            emu.faults.add(parse_fault(_json_body(body, "Fault rule")))
            return 200, {"faults": emu.faults.describe()}
    raise StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). The Stripe emulator has no such "
        "control endpoint.",
    )


def _json_body(body: bytes, what: str) -> Any:
    try:
        return orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        raise StripeError(400, f"{what} must be a JSON object", param="body") from None


def _params(body: bytes) -> dict[str, Any]:
    """A JSON object or a form body as the form-decoded params a /v1 handler expects."""
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError:
        try:
            return parse_form(body.decode("utf-8"))
        except UnicodeDecodeError:
            raise StripeError(400, "The request body is not valid UTF-8.") from None
    if not isinstance(data, dict):
        raise StripeError(400, "The body must be a JSON object", param="body")
    formed = _formlike(data)
    assert isinstance(formed, dict)
    return formed


def _formlike(value: Any) -> Any:
    """JSON scalars as the strings a form body would carry (true -> "true", 5 -> "5")."""
    if isinstance(value, dict):
        return {str(k): _formlike(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_formlike(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)
