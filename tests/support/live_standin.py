"""A local stand-in for live-mode Stripe: our emulator behind a live-key check.

Real Stripe answers live keys and test keys at one address; the emulator answers only
test keys (and must stay so). `LiveStandIn` wraps an emulator app: a request with an
`sk_live_`/`rk_live_` key reaches the emulator as if made with the matching test key,
so it answers like Stripe; test keys pass as they are (tests build their Stripe
objects with them; one data set serves both, unlike Stripe). A restricted key
(`rk_live_`) is refused the routes in `withheld` (route -> the permission it lacks,
or None for a call no restricted key may make) with the 403 Stripe sends when a
restricted key lacks a permission (status 403, type `invalid_request_error`, no code,
the message naming the permission). Every request is recorded (method, path, key
prefix) for the tests to count.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from stripe_emulator.app import create_app
from tests.support.servers import serve_asgi

LIVE_PREFIXES = ("sk_live_", "rk_live_")


def permission_message(key: str, permission: str | None) -> str:
    """Stripe's text for a restricted key without `permission` (the key masked); with
    None, the text for a call no restricted key may make."""
    shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]
    lead = (
        f"The provided key '{shown}' does not have the required permissions for this "
        "endpoint on account 'acct_1StandInLive'."
    )
    if permission is None:
        return (
            f"{lead} This is a restricted API key, but the required permissions are not "
            "available for use by restricted keys."
        )
    return f"{lead} Having the '{permission}' permission would allow this request to continue."


class LiveStandIn:
    """ASGI app: live keys in, the emulator's answers out (see the module docstring)."""

    def __init__(self, app: Any, withheld: Mapping[tuple[str, str], str | None] | None = None):
        self.app = app
        self.withheld = dict(withheld or {})
        self.revoked = False  # True: every live key gets Stripe's 401, as once revoked
        self.requests: list[tuple[str, str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
        auth = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
        key = auth.removeprefix("Bearer ").strip()
        method, path = scope["method"], scope["path"]
        self.requests.append((method, path, key[:8]))
        if key.startswith(LIVE_PREFIXES):
            if self.revoked:
                shown = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]
                message = f"Invalid API Key provided: {shown}"
                error = {"message": message, "type": "invalid_request_error"}
                await _answer(send, 401, {"error": error})
                return
            if key.startswith("rk_live_") and (method, path) in self.withheld:
                permission = self.withheld[(method, path)]
                await _answer(
                    send,
                    403,
                    {
                        "error": {
                            "message": permission_message(key, permission),
                            "type": "invalid_request_error",
                        }
                    },
                )
                return
            key = "sk_test_" + key.split("_", 2)[2]
        headers.append((b"authorization", f"Bearer {key}".encode("latin-1")))
        await self.app({**scope, "headers": headers}, receive, send)

    def calls(self, method: str, path: str) -> int:
        """How many requests asked `method path`."""
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))


async def _answer(send: Any, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"request-id", b"req_standin")],
        }
    )
    await send({"type": "http.response.body", "body": data})


@contextmanager
def running_live_standin(
    withheld: Mapping[tuple[str, str], str | None] | None = None,
) -> Iterator[tuple[str, LiveStandIn]]:
    """Serve a fresh stand-in on 127.0.0.1; yields (base URL, the stand-in)."""
    standin = LiveStandIn(create_app(advance_delay_s=0.05), withheld)
    with serve_asgi(standin) as base_url:
        yield base_url, standin
