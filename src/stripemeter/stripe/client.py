"""The Stripe seam: the only module that builds a Stripe client.

Everything that talks to Stripe (the writer, the reconciler, the demo steps) gets its
`stripe.StripeClient` from `make_client`, which decides where Stripe is:
`STRIPE_API_BASE` when set (our emulator), real Stripe otherwise. Live keys are
refused before any call: this project only ever touches test mode.
"""

from __future__ import annotations

import stripe

from stripe_emulator import DEFAULT_PORT as EMULATOR_PORT
from stripemeter.config import Settings
from stripemeter.errors import StripeConfigError

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


def client_for_settings(settings: Settings, *, max_network_retries: int = 0) -> stripe.StripeClient:
    """The client the workers and API use: the configured target, SDK retries off.

    The writer and reconciler retry through `stripe_gateway.RetryPolicy` (which also
    retries 429s, unlike the SDK), so the SDK's own retries default to 0 here. Each
    call times out after `STRIPE_TIMEOUT_S`.
    """
    return make_client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        max_network_retries=max_network_retries,
        timeout_s=settings.STRIPE_TIMEOUT_S,
    )
