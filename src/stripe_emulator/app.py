"""The ASGI application: auth, parsing, idempotency, fault injection and routing.

`create_app()` returns a raw ASGI callable holding one Stripe account, in memory or,
with `state_dir`, also in a state file (persistence.py) committed after every request
and before its answer is sent. Every answer carries a `Request-Id`; every refusal is
Stripe's JSON error shape.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from stripe_emulator import (
    billing,
    catalog,
    clocks,
    control,
    credit_notes,
    customers,
    invoice_items,
    invoices,
    meter_event_stream,
    meter_events,
    meters,
    subscriptions,
    webhooks,
)
from stripe_emulator.errors import StripeError, api_error
from stripe_emulator.expand import apply_expand
from stripe_emulator.faults import Fault, Faults
from stripe_emulator.form import parse_form
from stripe_emulator.idempotency import IdempotencyStore, fingerprint
from stripe_emulator.persistence import open_state
from stripe_emulator.routing import Ctx, Handler, Router
from stripe_emulator.store import Store, public, random_token

API_VERSION = "2026-10-28.endive"
VERSION_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")
log = logging.getLogger("stripe_emulator")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Answer = tuple[int, bytes, dict[str, str]]


def _json(status: int, body: Any) -> Answer:
    return status, orjson.dumps(body), {}


def _error(err: StripeError) -> Answer:
    return _json(err.status, err.body())


def _api_key(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0]
    return None


def check_auth(headers: dict[str, str]) -> None:
    """Only test secret keys get in (Bearer, or Basic with the key as user)."""
    key = _api_key(headers)
    if not key:
        raise StripeError(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    if not key.startswith("sk_test_") or len(key) <= len("sk_test_"):
        shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:] if len(key) > 12 else "***"
        raise StripeError(
            401,
            f"Invalid API Key provided: {shown}. The Stripe emulator accepts only test-mode "
            "secret keys (sk_test_...).",
        )


def check_version(headers: dict[str, str]) -> None:
    """Refuse a `Stripe-Version` that is not a Stripe API version, as Stripe does.

    Behaviour is always the pinned version's. Other well-formed versions dated no later
    than the pinned one (`YYYY-MM-DD` or `YYYY-MM-DD.name`) are let through, because Stripe
    knows them, but answered in the pinned version's shapes.
    """
    version = headers.get("stripe-version")
    if version is None:
        return
    if VERSION_FORMAT.match(version) and version[:10] <= API_VERSION[:10]:
        return
    raise StripeError(
        400,
        f"Invalid Stripe API version: {version}",
        param=None,
    )


class Emulator:
    """One Stripe account served over ASGI."""

    def __init__(
        self, advance_delay_s: float = 0.5, state_dir: Path | None = None, reset: bool = False
    ) -> None:
        self.store = Store(advance_delay_s)
        self.idempotency = IdempotencyStore()
        if state_dir is not None:
            open_state(state_dir, reset=reset).load(self.store, self.idempotency)
        self.faults = Faults()
        self.router = Router()
        for module in (
            clocks,
            customers,
            catalog,
            meters,
            meter_events,
            meter_event_stream,
            subscriptions,
            invoices,
            invoice_items,
            credit_notes,
            webhooks,
        ):
            module.register(self.router)

    def close(self) -> None:
        """Release the state file, if any (its content stays on disk)."""
        if self.store.backing is not None:
            self.store.backing.close()
            self.store.backing = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.close)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            status, payload, extra = await self.answer(
                scope["method"],
                scope["path"],
                scope["query_string"].decode("latin-1"),
                body,
                headers,
            )
        except StripeError as err:
            status, payload, extra = _error(err)
        except Exception:  # pragma: no cover - a bug; still answer in Stripe's shape
            log.exception("unexpected emulator failure")
            status, payload, extra = _error(api_error(500, "An unexpected error occurred."))
        try:
            # Durable before acknowledged: a crash after this loses nothing answered.
            self.store.commit()
        except Exception:  # pragma: no cover - disk failure; do not acknowledge
            log.exception("could not write the emulator state")
            status, payload, extra = _error(api_error(500, "The emulator could not save state."))
        out_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"request-id", f"req_{random_token(14)}".encode()),
            (b"stripe-version", headers.get("stripe-version", API_VERSION).encode("latin-1")),
        ]
        out_headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": payload})

    async def answer(
        self, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
    ) -> Answer:
        """The status, body and extra headers for one request."""
        if path.startswith("/_emulator/"):
            return _json(*control.handle(self, method, path, body))
        if path == meter_event_stream.STREAM_PATH:
            meter_event_stream.check_session(self.store, headers)  # a session token, no key
        else:
            check_auth(headers)
        check_version(headers)
        found = self.router.match(method, path)
        if found is None:
            raise StripeError(
                404,
                f"Unrecognized request URL ({method}: {path}). The Stripe emulator does not "
                "implement this endpoint.",
            )
        handler, args = found
        raw = parse_form(query) if query else {}
        if body:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise StripeError(400, "The request body is not valid UTF-8.") from None
            raw.update(_json_body(text) if path.startswith("/v2/") else parse_form(text))
        billing.tick(self.store)
        fault = self.faults.take(method, path)
        if fault is not None and not fault.after_commit:
            await _sleep_ms(fault.delay_ms)
            return _error(api_error(fault.status, _fault_message(fault)))
        key = headers.get("idempotency-key") if method == "POST" else None
        if key is None:
            result = self._execute(handler, Ctx(self.store, method, path, args, raw))
            return await _after_commit(fault, result)
        fp = fingerprint(method, path, raw)
        stored = self.idempotency.lookup(key, fp)
        if stored is not None:
            return await _after_commit(
                fault, (stored.status, stored.body, {"Idempotent-Replayed": "true"})
            )
        self.idempotency.begin(key, fp)
        try:
            result = self._execute(handler, Ctx(self.store, method, path, args, raw))
            answer = await _after_commit(fault, result)
        except BaseException:
            self.idempotency.abandon(key)
            raise
        self.idempotency.finish(key, result[0], result[1])
        return answer

    def _execute(self, handler: Handler, ctx: Ctx) -> Answer:
        try:
            obj = handler(ctx)
            out = public(obj)
            expand = ctx.params.get("expand")
            if expand:
                apply_expand(out, expand, self.store)
            return _json(200, out)
        except StripeError as err:
            return _error(err)


def _json_body(text: str) -> dict[str, Any]:
    """An API v2 body: one JSON object (the SDK sends `application/json` on /v2)."""
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise StripeError(400, "The request body is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise StripeError(400, "The request body must be a JSON object.")
    return parsed


def _fault_message(fault: Fault) -> str:
    return (
        f"Injected failure ({fault.status}) by the Stripe emulator for {fault.method} {fault.path}."
    )


async def _after_commit(fault: Fault | None, result: Answer) -> Answer:
    if fault is None:
        return result
    await _sleep_ms(fault.delay_ms)
    return _error(api_error(fault.status, _fault_message(fault)))


async def _sleep_ms(ms: int) -> None:
    if ms > 0:
        await asyncio.sleep(ms / 1000)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send, on_shutdown: Callable[[], None]) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            on_shutdown()  # checkpoint and close the state file on a clean stop
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(
    *, advance_delay_s: float = 0.5, state_dir: Path | None = None, reset: bool = False
) -> Emulator:
    """An emulator as an ASGI app: in memory, or kept in `state_dir` across restarts.

    `advance_delay_s` is the real time a test clock stays `advancing` after an advance.
    `reset` deletes the stored state first. Raises `persistence.StateError` when the
    state directory or file cannot be used.
    """
    return Emulator(advance_delay_s, state_dir, reset)
