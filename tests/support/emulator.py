"""A real stripe_emulator over HTTP for tests, and an SDK client pointed at it.

`counting_emulator` also counts the HTTP requests it answers, by (method, path, status):
how tests and the writer bench see how many Stripe calls a transport makes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import stripe

from stripe_emulator.app import create_app
from tests.support.servers import serve_asgi

TEST_KEY = "sk_test_emulator_tests"


@contextmanager
def running_emulator(advance_delay_s: float = 0.05) -> Iterator[str]:
    """Serve a fresh emulator on 127.0.0.1 (free port) for the block; yields its base URL."""
    with serve_asgi(create_app(advance_delay_s=advance_delay_s)) as base_url:
        yield base_url


RequestCounts = Counter[tuple[str, str, int]]


class _Counting:
    """ASGI wrapper: counts each HTTP request by (method, path, response status)."""

    def __init__(self, app: Any, counts: RequestCounts) -> None:
        self.app, self.counts = app, counts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_emulator/"):
            await self.app(scope, receive, send)
            return

        async def counted(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.counts[(scope["method"], scope["path"], int(message["status"]))] += 1
            await send(message)

        await self.app(scope, receive, counted)


@contextmanager
def counting_emulator(advance_delay_s: float = 0.05) -> Iterator[tuple[str, RequestCounts]]:
    """`running_emulator`, yielding (base URL, live request counts)."""
    counts: RequestCounts = Counter()
    app = _Counting(create_app(advance_delay_s=advance_delay_s), counts)
    with serve_asgi(app) as base_url:
        yield base_url, counts


def requests_to(counts: RequestCounts, path: str, status: int | None = None) -> int:
    """How many requests went to `path` (with `status`, or any)."""
    return sum(n for (_, p, s), n in counts.items() if p == path and status in (None, s))


def sdk_client(base_url: str, api_key: str = TEST_KEY) -> stripe.StripeClient:
    """The official StripeClient aimed at `base_url`, without retries (each call = 1 request)."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base_url, "meter_events": base_url},
        max_network_retries=0,
    )
