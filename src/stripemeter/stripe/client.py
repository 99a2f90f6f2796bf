"""The Stripe seam: the only module that builds a Stripe client or a gateway.

- `gateway_from_settings(settings)` — THE factory of the service (workers, API, CLI):
  a `StripeGateway` on the configured Stripe, with the settings' account, concurrency
  cap and call timeout, and the SDK's own retries off (the gateway retries).
- `make_client(key, base)` — the bare `stripe.StripeClient` under it, for the demo
  steps and tests that call Stripe directly.
- `gateway_for(client_or_gateway, settings)` — what the writer and the reconciler
  accept: a gateway passes through, a bare client gets the settings' gateway around it.

`resolve_stripe_target` is the one rule of where Stripe is and which keys may be used,
by `live`:

- `"refuse"` (the default; the demo steps, the benches, the dev stack): test keys only,
  a live key is refused whatever `STRIPEMETER_LIVE` says;
- `"off"` (the service without the opt-in): test keys only; a live key is refused
  with the setting that would allow it;
- `"on"` (the service with `STRIPEMETER_LIVE=1` or `--live`): live keys only
  (`sk_live_`/`rk_live_`); a test key or no key is refused. `STRIPE_API_BASE` is
  allowed (a stand-in, a proxy) and `StripeTarget.warning` says so loudly. Our
  emulator answers a live key with 401 itself.

`service_target(settings)` applies it to the service's settings and says, in
`StripeTarget.describe()`, which mode the service runs in (never the full key).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, TypeAlias

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


LiveMode = Literal["refuse", "off", "on"]
# What `/health/ready` and the `stripemeter_stripe_mode` gauge say; "refused" when the
# service's Stripe settings cannot be used (an API started with --no-workers).
StripeMode = Literal["live", "test", "emulator", "refused"]
REAL_STRIPE_BASE = "https://api.stripe.com"


@dataclass(frozen=True)
class StripeTarget:
    """Where the service's Stripe is, with which key, in which mode."""

    key: str
    base: str | None  # None: Stripe itself
    mode: StripeMode

    @property
    def shown_key(self) -> str:
        """The key as logs may show it: its prefix and last four characters."""
        known = LIVE_KEY_PREFIXES + TEST_KEY_PREFIXES
        prefix = next((p for p in known if self.key.startswith(p)), "")
        return f"{prefix}…{self.key[-4:]}" if len(self.key) > len(prefix) + 4 else f"{prefix}…"

    def describe(self) -> str:
        """One start-up line: "Stripe: live mode, key rk_live_…abcd, https://api.stripe.com"."""
        if self.mode == "emulator":
            return f"Stripe: emulator at {self.base}"
        where = self.base or REAL_STRIPE_BASE
        return f"Stripe: {self.mode} mode, key {self.shown_key}, {where}"

    @property
    def warning(self) -> str | None:
        """A loud line when live keys go somewhere other than Stripe's own address."""
        if self.mode == "live" and self.base is not None:
            return (
                f"LIVE MODE against STRIPE_API_BASE={self.base}, not {REAL_STRIPE_BASE}: "
                "live keys and real billing data go to that address"
            )
        return None


def _refuse_live(live: LiveMode) -> None:
    if live == "refuse":
        raise StripeConfigError(
            "STRIPE_SECRET_KEY is a live-mode key; the demo steps, benches, dev stack and "
            "emulator only run in test mode, whatever STRIPEMETER_LIVE says (use an sk_test_ "
            "key, or unset it to use the emulator)"
        )
    raise StripeConfigError(
        "STRIPE_SECRET_KEY is a live-mode key but the service is in test mode; set "
        "STRIPEMETER_LIVE=1 (or pass --live) to meter real billing, or use an sk_test_ key"
    )


def resolve_stripe_target(
    secret_key: str | None, api_base: str | None, *, live: LiveMode = "refuse"
) -> tuple[str, str | None]:
    """Return (key, base address or None for real Stripe) after refusing unsafe settings.

    `live` says who asks (see the module docstring). Test mode ("refuse", "off"):

    - a live key is refused, whatever the base;
    - no key and no base: the emulator at its default address;
    - no key with a base: the emulator key;
    - a key that is not a test key is refused.

    Live mode ("on"): the key must be a live key (`sk_live_`, `rk_live_`); the base is
    Stripe's unless `STRIPE_API_BASE` is set.
    """
    key = (secret_key or "").strip()
    base = (api_base or "").strip() or None
    if live == "on":
        if not key:
            raise StripeConfigError(
                "STRIPEMETER_LIVE is on but STRIPE_SECRET_KEY is not set; set it to an "
                "sk_live_/rk_live_ key, or unset STRIPEMETER_LIVE (and drop --live) for test mode"
            )
        if key.startswith(TEST_KEY_PREFIXES):
            raise StripeConfigError(
                "STRIPEMETER_LIVE is on but STRIPE_SECRET_KEY is a test-mode key; use an "
                "sk_live_/rk_live_ key, or unset STRIPEMETER_LIVE (and drop --live) for test mode"
            )
        if not key.startswith(LIVE_KEY_PREFIXES) or key in LIVE_KEY_PREFIXES:
            raise StripeConfigError(
                "STRIPE_SECRET_KEY does not look like a Stripe live key "
                "(expected sk_live_... or rk_live_...)"
            )
        return key, base
    if key.startswith(LIVE_KEY_PREFIXES):
        _refuse_live(live)
    if not key:
        return EMULATOR_KEY, base or DEFAULT_EMULATOR_BASE
    if not key.startswith(TEST_KEY_PREFIXES):
        raise StripeConfigError(
            "STRIPE_SECRET_KEY does not look like a Stripe test key (expected sk_test_...)"
        )
    return key, base


def refuse_live_key(secret_key: str | None) -> None:
    """Refuse a live key for code that only ever runs in test mode (the benches),
    whatever else it does with the key."""
    if (secret_key or "").strip().startswith(LIVE_KEY_PREFIXES):
        _refuse_live("refuse")


def live_mode(settings: Settings) -> LiveMode:
    """The service's `live` argument: "on" with `STRIPEMETER_LIVE`, else "off"."""
    return "on" if settings.STRIPEMETER_LIVE else "off"


def service_target(settings: Settings) -> StripeTarget:
    """The service's Stripe target and mode; raises StripeConfigError (one line) first."""
    key, base = resolve_stripe_target(
        settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE, live=live_mode(settings)
    )
    if settings.STRIPEMETER_LIVE:
        return StripeTarget(key, base, "live")
    if not (settings.STRIPE_SECRET_KEY or "").strip():
        return StripeTarget(key, base, "emulator")
    return StripeTarget(key, base, "test")


def service_mode(settings: Settings) -> StripeMode:
    """The service's mode, "refused" when its Stripe settings cannot be used."""
    try:
        return service_target(settings).mode
    except StripeConfigError:
        return "refused"


def make_client(
    secret_key: str | None,
    api_base: str | None,
    *,
    max_network_retries: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    live: LiveMode = "refuse",
) -> stripe.StripeClient:
    """A StripeClient for the resolved target, with explicit retries (the default is 0).

    Every HTTP call it makes gives up after `timeout_s` (connect and read each): a
    Stripe that hangs turns into an `APIConnectionError` the caller's retry policy
    handles, instead of a thread (and whatever it holds) stuck for the SDK's 80 s.
    `live` as in `resolve_stripe_target` (the default refuses live keys).
    """
    key, base = resolve_stripe_target(secret_key, api_base, live=live)
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
    Raises StripeConfigError for a key the mode refuses (`service_target`).
    """
    return make_client(
        settings.STRIPE_SECRET_KEY,
        settings.STRIPE_API_BASE,
        max_network_retries=0,
        timeout_s=settings.STRIPE_TIMEOUT_S,
        live=live_mode(settings),
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
    Raises StripeConfigError for a key the mode refuses, before any call.
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
