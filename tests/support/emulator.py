"""A real stripe_emulator over HTTP for tests, and an SDK client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import stripe

from stripe_emulator.app import create_app
from tests.support.servers import serve_asgi

TEST_KEY = "sk_test_emulator_tests"


@contextmanager
def running_emulator(advance_delay_s: float = 0.05) -> Iterator[str]:
    """Serve a fresh emulator on 127.0.0.1 (free port) for the block; yields its base URL."""
    with serve_asgi(create_app(advance_delay_s=advance_delay_s)) as base_url:
        yield base_url


def sdk_client(base_url: str, api_key: str = TEST_KEY) -> stripe.StripeClient:
    """The official StripeClient aimed at `base_url`, without retries (each call = 1 request)."""
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": base_url, "meter_events": base_url},
        max_network_retries=0,
    )
