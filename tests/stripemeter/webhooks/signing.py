"""Hand-signed Stripe webhooks: Stripe's documented scheme, written out independently of
the emulator (`t=<unix>,v1=hex(hmac_sha256(secret, "<t>.<body>"))`)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import requests


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for `body`."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def signed_post(
    api: str, secret: str, event: dict[str, Any], *, timestamp: int | None = None
) -> requests.Response:
    """POST `event` to the API's webhook route, signed with `secret`."""
    body = json.dumps(event).encode()
    return requests.post(
        f"{api}/v1/stripe/webhooks",
        data=body,
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature(secret, body, timestamp),
        },
        timeout=30,
    )
