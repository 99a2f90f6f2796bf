"""The Stripe seam: the only module that builds a Stripe client or a gateway.

- `gateway_from_settings(settings)` — THE factory of the service (workers, API, CLI):
  a `StripeGateway` on the configured Stripe, with the settings' account, concurrency
  cap and call timeout, and the SDK's own retries off (the gateway retries).
- `make_client(key, base)` — the bare `stripe.StripeClient` under it, for the demo
  steps and tests that call Stripe directly.
- `gateway_for(client_or_gateway, settings)` — what the writer and the reconciler
  accept: a gateway passes through, a bare client gets the settings' gateway around it.

`make_client` decides where Stripe is: `STRIPE_API_BASE` when set (our emulator), real
Stripe otherwise. Live keys are refused before any call: this project only ever
touches test mode.
"""

from __future__ import annotations

import threading
from typing import TypeAlias

import stripe

from stripe_emulator import DEFAULT_PORT as EMULATOR_PORT
from stripemeter.config import Settings
from stripemeter.errors import StripeConfigError
from stripemeter.stripe.gateway import RetryPolicy, StripeGateway

# What the writer and the reconciler take: a gateway, or a bare client to wrap.
ClientOrGateway: TypeAlias = stripe.StripeClient | StripeGateway

DEFAULT_EMULATOR_BASE = f"http://127.0.0.1:{EMULATOR_PORT}"
# Any sk_test_ key works against the emulator; this one says where it came from.
EMULATOR_KEY = "sk_test_stripemeter_emulator"
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")
TEST_KEY_PREFIXES = ("sk_test_", "rk_test_")
# The SDK's own default is 80 s; services pass `Settings.STRIPE_TIMEOUT_S` instead.
DEFAULT_TIMEOUT_S = 20.0


def resolve_stripe_target(secret_key: str | None, api_base: str | None) -> tuple[str, str | None]:
    """Return (key, base address or None for real Stripe) after refusing unsafe settings.

    - a live key is refused, whatever the base;
    - no key and no base: the emulator at its default address;
    - no key with a base: the emulator key;
    - a key that is not a test key is refused.
    """
    key = (secret_key or "").strip()
    base = (api_base or "").strip() or None
    if key.startswith(LIVE_KEY_PREFIXES):
        raise StripeConfigError(
            "STRIPE_SECRET_KEY is a live-mode key; stripemeter's demo and tests only run "
            "against test mode (use an sk_test_ key, or unset it to use the emulator)"
        )
    if not key:
        return EMULATOR_KEY, base or DEFAULT_EMULATOR_BASE
    if not key.startswith(TEST_KEY_PREFIXES):
        raise StripeConfigError(
            "STRIPE_SECRET_KEY does not look like a Stripe test key (expected sk_test_...)"
        )
    return key, base


def make_client(
    secret_key: str | None,
    api_base: str | None,
    *,
    max_network_retries: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> stripe.StripeClient:
    """A StripeClient for the resolved target, with explicit retries (the default is 0).

    Every HTTP call it makes gives up after `timeout_s` (connect and read each): a
    Stripe that hangs turns into an `APIConnectionError` the caller's retry policy
    handles, instead of a thread (and whatever it holds) stuck for the SDK's 80 s.
    """
    key, base = resolve_stripe_target(secret_key, api_base)
    http_client = stripe.RequestsClient(timeout=timeout_s)
    if base is None:
        return stripe.StripeClient(
            key, max_network_retries=max_network_retries, http_client=http_client
        )
    return stripe.StripeClient(
        key,
        base_addresses={"api": base, "meter_events": base},
        max_network_retries=max_network_retries,
        http_client=http_client,
    )


def client_for_settings(settings: Settings) -> stripe.StripeClient:
    """The bare client inside `gateway_from_settings`: the configured target, SDK retries off.

    The gateway retries through `RetryPolicy` (which also retries 429s, unlike the
    SDK), so the SDK's own retries are 0. Each call times out after `STRIPE_TIMEOUT_S`.
    Raises StripeConfigError for a live or non-test key.
    """
    return make_client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        max_network_retries=0,
        timeout_s=settings.STRIPE_TIMEOUT_S,
    )


def gateway_from_settings(
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
) -> StripeGateway:
    """The service's gateway to the configured Stripe.

    `retry` defaults to `RetryPolicy()`; callers someone waits on pass fewer attempts.
    With `stop`, a retry backoff ends with `ShuttingDown` as soon as the event is set.
    Raises StripeConfigError for a live or non-test key, before any call.
    """
    return _wrap(client_for_settings(settings), settings, retry=retry, stop=stop)


def gateway_for(client: ClientOrGateway, settings: Settings) -> StripeGateway:
    """`client` if it is a gateway; else a gateway around it, configured from settings."""
    if isinstance(client, StripeGateway):
        return client
    return _wrap(client, settings)


def _wrap(
    client: stripe.StripeClient,
    settings: Settings,
    *,
    retry: RetryPolicy | None = None,
    stop: threading.Event | None = None,
) -> StripeGateway:
    return StripeGateway(
        client,
        account=settings.STRIPE_ACCOUNT,
        max_concurrency=settings.STRIPE_MAX_CONCURRENCY,
        retry=retry or RetryPolicy(),
        stop=stop,
    )
