"""`gateway_from_settings`, the one factory, and the gateway's stop event, against the
emulator over real HTTP."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests

from stripemeter.config import load_settings
from stripemeter.errors import GatewayError, ShuttingDown, StripeConfigError, StripeUnavailable
from stripemeter.stripe.client import gateway_for, gateway_from_settings, make_client
from stripemeter.stripe.gateway import RetryPolicy, account_semaphore
from tests.support.emulator import TEST_KEY
from tests.support.stripe_world import emulator_state, fault

CUSTOMERS = "/v1/customers/*"


def faults_left(emulator_url: str) -> int:
    rules = requests.get(f"{emulator_url}/_emulator/faults", timeout=10).json()["faults"]
    return sum(int(rule["count"]) for rule in rules)


def test_the_gateway_takes_account_and_concurrency_cap_from_settings(emulator_url: str) -> None:
    account = f"acct_factory_{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        STRIPE_API_BASE=emulator_url,
        STRIPE_SECRET_KEY=TEST_KEY,
        STRIPE_ACCOUNT=account,
        STRIPE_MAX_CONCURRENCY=3,
    )
    gateway = gateway_from_settings(settings)
    assert gateway.account == account
    assert gateway.retry == RetryPolicy()
    cap = account_semaphore(account, 99)  # the account's cap already exists: 3
    taken = [cap.acquire(blocking=False) for _ in range(4)]
    for _ in range(sum(taken)):
        cap.release()
    assert taken == [True, True, True, False]


def test_only_the_gateway_retries_not_the_sdk(emulator_url: str) -> None:
    settings = load_settings(STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY)
    gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=1))
    fault(emulator_url, method="GET", path=CUSTOMERS, status=500, count=3)
    with pytest.raises(StripeUnavailable, match="after 1 attempts"):
        gateway.customer_exists("cus_nobody")
    assert faults_left(emulator_url) == 2  # one request: the SDK did not retry on its own


def test_a_live_key_is_refused_before_any_call(emulator_url: str) -> None:
    settings = load_settings(STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY="sk_live_123")
    before = emulator_state(emulator_url)
    with pytest.raises(StripeConfigError, match="live-mode key"):
        gateway_from_settings(settings)
    assert emulator_state(emulator_url) == before


def test_gateway_for_passes_a_gateway_through_and_wraps_a_bare_client(emulator_url: str) -> None:
    settings = load_settings(STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY)
    gateway = gateway_from_settings(settings)
    assert gateway_for(gateway, settings) is gateway
    client = make_client(TEST_KEY, emulator_url)
    wrapped = gateway_for(client, settings)
    assert wrapped.client is client
    assert (wrapped.account, wrapped.retry) == (settings.STRIPE_ACCOUNT, RetryPolicy())


def test_the_stop_event_ends_a_backoff_with_shutting_down_not_a_gateway_error(
    emulator_url: str,
) -> None:
    settings = load_settings(STRIPE_API_BASE=emulator_url, STRIPE_SECRET_KEY=TEST_KEY)
    stop = threading.Event()
    slow = RetryPolicy(attempts=4, base_delay_s=20.0, max_delay_s=20.0)
    gateway = gateway_from_settings(settings, retry=slow, stop=stop)
    fault(emulator_url, method="GET", path=CUSTOMERS, status=429, count=10)
    timer = threading.Timer(0.5, stop.set)
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(ShuttingDown) as caught:
            gateway.customer_exists("cus_nobody")
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5  # not the 10 s or more of the first backoff
    assert not isinstance(caught.value, GatewayError)
    assert str(caught.value) == "stopping: a Stripe retry was abandoned; the work stays pending"
    assert faults_left(emulator_url) == 9  # one answer, then the backoff, then the stop
    with pytest.raises(ShuttingDown):  # once set, the next backoff ends at once
        gateway.customer_exists("cus_nobody")
    assert faults_left(emulator_url) == 8
