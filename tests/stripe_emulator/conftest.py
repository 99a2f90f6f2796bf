"""One emulator server per test session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import stripe

from tests.support.emulator import running_emulator, sdk_client


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    """Base URL of a real emulator on 127.0.0.1 (clock advances settle after 20 ms)."""
    with running_emulator(advance_delay_s=0.02) as url:
        yield url


@pytest.fixture
def base_url(emulator_url: str) -> str:
    """The emulator's URL after forgetting every object, key and fault."""
    requests.post(f"{emulator_url}/_emulator/reset", timeout=5).raise_for_status()
    return emulator_url


@pytest.fixture
def client(base_url: str) -> stripe.StripeClient:
    """The official SDK pointed at a freshly reset emulator."""
    return sdk_client(base_url)
