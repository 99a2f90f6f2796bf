"""Webhook endpoints (`/v1/webhook_endpoints`) and the delivery of recorded events to them.

`events.record` queues each new event on every enabled endpoint subscribed to its type
(`_queue` on the endpoint, per-endpoint state in the event's `_deliveries`). Delivery runs
on the server's event loop: one asyncio task per endpoint with a non-empty queue, started
lazily by `kick`, sends the queue head and only then the next one (event order per
endpoint), with the blocking HTTP POST in a worker thread so request handling never waits.
Each POST carries Stripe's `Stripe-Signature: t=<unix>,v1=<hmac_sha256(secret, "t.body")>`,
so `stripe.Webhook.construct_event` verifies it with the endpoint's `whsec_` secret. A
non-2xx answer or a connection error is retried with exponential backoff (seconds, not
Stripe's days; see `Settings`) until acknowledged or `max_attempts` is spent:
at-least-once, as Stripe. Unlike Stripe, loopback URLs (`http://127.0.0.1:...`) are
accepted, since offline receivers are the point.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import time
import weakref
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import requests

from stripe_emulator import events
from stripe_emulator.customers import merge_metadata
from stripe_emulator.errors import emulator_unsupported, invalid, missing_param
from stripe_emulator.lists import paginate
from stripe_emulator.params import EXPAND, PAGING, b, lst, m, s
from stripe_emulator.routing import Ctx, Router
from stripe_emulator.store import Obj, Store, public, random_token, real_now

KIND = "webhook endpoint"
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
log = logging.getLogger("stripe_emulator")
_VERSION_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$")

CREATE = {
    "url": s(required=True),
    "enabled_events": lst(s(), required=True),
    "api_version": s(),
    "connect": b(),
    "description": s(),
    "metadata": m(),
    "expand": EXPAND,
}
UPDATE = {
    "url": s(),
    "enabled_events": lst(s()),
    "disabled": b(),
    "description": s(),
    "metadata": m(),
    "expand": EXPAND,
}


@dataclass
class Settings:
    """Delivery timing of one emulator (`/_emulator/webhook_settings`).

    Attempt n (1-based) that fails is retried after `min(retry_base_s * 2**(n-1),
    retry_max_s)` seconds; after `max_attempts` failures the event is given up for that
    endpoint and the next one in its queue is sent.
    """

    retry_base_s: float = 1.0
    retry_max_s: float = 60.0
    max_attempts: int = 8
    timeout_s: float = 10.0

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt`."""
        return float(min(self.retry_base_s * 2 ** min(attempt - 1, 30), self.retry_max_s))


class Deliverer:
    """The delivery tasks and settings of one store (one emulator instance)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = Settings()
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # Bumped by `stop`: a task or an in-flight POST of an older generation records nothing.
        self.generation = 0

    def kick(self) -> None:
        """Start a task for every enabled endpoint with queued events that has none."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the server's loop (e.g. direct calls); the next request kicks
        for ep in self.store.all("webhook_endpoints"):
            if ep["status"] != "enabled" or not ep.get("_queue"):
                continue
            task = self.tasks.get(ep["id"])
            if task is not None and not task.done() and task.get_loop() is loop:
                continue
            self.tasks[ep["id"]] = loop.create_task(self._drain(ep["id"], self.generation))

    def stop(self, endpoint_id: str | None = None) -> None:
        """Cancel delivery to one endpoint, or to all (and void in-flight attempts)."""
        if endpoint_id is None:
            self.generation += 1
            ids = list(self.tasks)
        else:
            ids = [endpoint_id] if endpoint_id in self.tasks else []
        for we_id in ids:
            task = self.tasks.pop(we_id)
            if not task.done() and not task.get_loop().is_closed():
                task.cancel()

    async def _drain(self, we_id: str, generation: int) -> None:
        store = self.store
        while generation == self.generation:
            ep = store.by_type["webhook_endpoints"].get(we_id)
            if ep is None or ep["status"] != "enabled" or not ep.get("_queue"):
                return
            queue: list[str] = ep["_queue"]
            event = store.by_type["events"].get(queue[0])
            state = (event or {}).get("_deliveries", {}).get(we_id)
            if event is None or state is None:
                queue.pop(0)
                continue
            wait = state["next_at"] - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            url = ep["url"]
            body = orjson.dumps(public(event), option=orjson.OPT_INDENT_2)
            headers = signed_headers(ep["_secret"], body, int(time.time()))
            status, error = await asyncio.to_thread(
                _post, url, body, headers, self.settings.timeout_s
            )
            if generation != self.generation:
                return
            self._note(ep, event, state, url, status, error)
            # Outside any request, so nothing else would persist this attempt now.
            store.touch(event)
            store.touch(ep)
            try:
                store.commit()
            except Exception:  # pragma: no cover - disk failure; the next request retries
                log.exception("could not save webhook delivery state")

    def _note(
        self, ep: Obj, event: Obj, state: Obj, url: str, status: int | None, error: str | None
    ) -> None:
        """Record one attempt; advance the queue on success or when attempts run out."""
        attempts: list[Obj] = state["attempts"]
        ok = status is not None and 200 <= status < 300
        attempts.append(
            {
                "attempt": len(attempts) + 1,
                "url": url,
                "status_code": status,
                "error": error,
                "at": time.time(),
                "delivered": ok,
            }
        )
        if ok:
            state["delivered"] = True
            event["pending_webhooks"] = max(event["pending_webhooks"] - 1, 0)
        elif len(attempts) >= self.settings.max_attempts:
            state["gave_up"] = True
        else:
            state["next_at"] = time.time() + self.settings.backoff(len(attempts))
            return
        queue = ep.get("_queue") or []
        if queue and queue[0] == event["id"]:
            queue.pop(0)


_DELIVERERS: weakref.WeakKeyDictionary[Store, Deliverer] = weakref.WeakKeyDictionary()


def deliverer(store: Store) -> Deliverer:
    """The delivery state of `store`'s emulator, created on first use."""
    found = _DELIVERERS.get(store)
    if found is None:
        found = _DELIVERERS[store] = Deliverer(store)
    return found


def kick(store: Store) -> None:
    """Make sure queued events are on their way (called by `events.record` and handlers)."""
    deliverer(store).kick()


def stop(store: Store) -> None:
    """Cancel every pending delivery and retry (POST /_emulator/reset)."""
    deliverer(store).stop()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `Stripe-Signature` header value for `body` sent at `timestamp`."""
    signed = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_headers(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """The headers of one delivery POST."""
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Stripe-Signature": sign(secret, body, timestamp),
    }


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout: float
) -> tuple[int | None, str | None]:
    """POST one delivery (in a worker thread): (status, None) or (None, error text)."""
    try:
        with requests.Session() as session:
            session.trust_env = False  # straight to the endpoint, as Stripe; no env proxies
            resp = session.post(
                url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
            )
            resp.close()  # the receiver's answer body is irrelevant
            return resp.status_code, None
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"


def delivery_rows(store: Store) -> list[Obj]:
    """Every delivery attempt, oldest first (GET /_emulator/webhook_deliveries)."""
    rows: list[tuple[float, Obj]] = []
    for event in store.all("events"):
        for we_id, state in event.get("_deliveries", {}).items():
            for att in state["attempts"]:
                row = {
                    "event": event["id"],
                    "type": event["type"],
                    "endpoint": we_id,
                    "url": att["url"],
                    "attempt": att["attempt"],
                    "status_code": att["status_code"],
                    "error": att["error"],
                    "timestamp": int(att["at"]),
                    "delivered": att["delivered"],
                }
                rows.append((att["at"], row))
    rows.sort(key=lambda pair: pair[0])
    return [row for _, row in rows]


def configure(store: Store, data: Any) -> Obj:
    """Change delivery settings from a JSON object; returns them all."""
    settings = deliverer(store).settings
    if not isinstance(data, dict):
        raise invalid("Webhook settings must be a JSON object", param="body")
    current = asdict(settings)
    for key, value in data.items():
        if key not in current:
            raise invalid(f"Unknown webhook setting: {key}", param=key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if key == "max_attempts":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise invalid("max_attempts must be an integer >= 1", param=key)
        elif not is_number or not 0 < value <= 3600:
            raise invalid(f"{key} must be a number of seconds in (0, 3600]", param=key)
    for key, value in data.items():
        setattr(settings, key, value)
    return asdict(settings)


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(f"Invalid URL: {url}", param="url", code="url_invalid")
    return url


def _check_events(names: list[str]) -> list[str]:
    if not names:
        raise missing_param("enabled_events")
    for n, name in enumerate(names):
        if name != "*" and name not in events.EVENT_TYPES:
            choices = ", ".join(["*", *sorted(events.EVENT_TYPES)])
            raise invalid(
                f"Invalid enabled_events[{n}]: must be one of {choices}",
                param=f"enabled_events[{n}]",
            )
    return names


def create(ctx: Ctx) -> Obj:
    """POST /v1/webhook_endpoints: the only answer that carries the `secret`."""
    p = ctx.validate(CREATE)
    url = _check_url(p["url"])
    enabled = _check_events(p["enabled_events"])
    if p.get("connect"):
        raise emulator_unsupported("connect")
    version = p.get("api_version")
    if version is not None and version != events.API_VERSION:
        if _VERSION_FORMAT.match(version):
            raise emulator_unsupported("api_version")
        raise invalid(f"Invalid Stripe API version: {version}", param="api_version")
    store = ctx.store
    endpoint: Obj = {
        "id": store.new_id("we"),
        "object": "webhook_endpoint",
        "api_version": version,
        "application": None,
        "created": real_now(),
        "description": p.get("description"),
        "enabled_events": enabled,
        "livemode": False,
        "metadata": merge_metadata({}, p.get("metadata") or {}),
        "status": "enabled",
        "url": url,
        "_secret": f"whsec_{random_token(32)}",
        "_queue": [],
    }
    store.insert("webhook_endpoints", endpoint)
    return {**endpoint, "secret": endpoint["_secret"]}


def retrieve(ctx: Ctx) -> Obj:
    """GET /v1/webhook_endpoints/{id} (no `secret`)."""
    ctx.validate({"expand": EXPAND})
    kick(ctx.store)
    return ctx.store.get("webhook_endpoints", ctx.args[0], KIND)


def update(ctx: Ctx) -> Obj:
    """POST /v1/webhook_endpoints/{id}: url, enabled_events, disabled, description, metadata.

    Events already queued stay queued; a disabled endpoint receives nothing (new events
    are not queued for it, queued ones wait until it is enabled again).
    """
    p = ctx.validate(UPDATE)
    store = ctx.store
    endpoint = store.get("webhook_endpoints", ctx.args[0], KIND)
    url = _check_url(p["url"]) if p.get("url") is not None else None
    enabled = _check_events(p["enabled_events"]) if "enabled_events" in p else None
    if url is not None:
        endpoint["url"] = url
    if enabled is not None:
        endpoint["enabled_events"] = enabled
    if "description" in p:
        endpoint["description"] = p["description"]
    if "metadata" in p:
        endpoint["metadata"] = merge_metadata(endpoint["metadata"], p["metadata"])
    if p.get("disabled") is not None:
        endpoint["status"] = "disabled" if p["disabled"] else "enabled"
    kick(store)
    return endpoint


def list_(ctx: Ctx) -> Obj:
    """GET /v1/webhook_endpoints: newest first."""
    p = ctx.validate(PAGING)
    kick(ctx.store)
    return paginate(ctx.store.all("webhook_endpoints"), p, "/v1/webhook_endpoints", kind=KIND)


def delete(ctx: Ctx) -> Obj:
    """DELETE /v1/webhook_endpoints/{id}: nothing more is sent to it."""
    ctx.validate({})
    store = ctx.store
    endpoint = store.get("webhook_endpoints", ctx.args[0], KIND)
    store.remove("webhook_endpoints", endpoint["id"])
    deliverer(store).stop(endpoint["id"])
    return {"id": endpoint["id"], "object": "webhook_endpoint", "deleted": True}


def register(router: Router) -> None:
    """Mount webhook endpoint and event routes."""
    base = "/v1/webhook_endpoints"
    router.add("POST", base, create)
    router.add("GET", base, list_)
    router.add("GET", base + "/{id}", retrieve)
    router.add("POST", base + "/{id}", update)
    router.add("DELETE", base + "/{id}", delete)
    events.register(router)
