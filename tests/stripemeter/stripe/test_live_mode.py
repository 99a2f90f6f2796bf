"""Live mode, one rule per test: which keys each caller may use, what the mode is
called, and how Stripe's answers to a live or restricted key come back.

The stand-in (`tests.support.live_standin`) answers live keys like Stripe; the
emulator itself refuses them with 401.
"""

from __future__ import annotations

import uuid

import pytest
import stripe

from stripemeter.config import load_settings
from stripemeter.errors import StripeConfigError, StripeKeyRefused, StripePermissionMissing
from stripemeter.stripe.client import (
    DEFAULT_EMULATOR_BASE,
    EMULATOR_KEY,
    gateway_from_settings,
    make_client,
    resolve_stripe_target,
    service_mode,
    service_target,
)
from stripemeter.stripe.gateway import RetryPolicy, StripeGateway
from tests.support.live_standin import running_live_standin

LIVE = "sk_live_51Abcdefghijklmnopqrstuvwx1234"
RESTRICTED = "rk_live_51Abcdefghijklmnopqrstuvwx9876"


@pytest.mark.parametrize("key", [LIVE, RESTRICTED])
def test_demo_callers_refuse_live_keys_whatever_the_base(key: str) -> None:
    for base in (None, "http://127.0.0.1:12111", "https://api.stripe.com"):
        with pytest.raises(StripeConfigError, match="whatever STRIPEMETER_LIVE says"):
            resolve_stripe_target(key, base)
        with pytest.raises(StripeConfigError, match="whatever STRIPEMETER_LIVE says"):
            make_client(key, base)


@pytest.mark.parametrize("key", [LIVE, RESTRICTED])
def test_the_service_in_test_mode_refuses_a_live_key_naming_the_opt_in(key: str) -> None:
    settings = load_settings(environ={}, STRIPE_SECRET_KEY=key)
    with pytest.raises(StripeConfigError) as refused:
        service_target(settings)
    assert str(refused.value) == (
        "STRIPE_SECRET_KEY is a live-mode key but the service is in test mode; set "
        "STRIPEMETER_LIVE=1 (or pass --live) to meter real billing, or use an sk_test_ key"
    )
    with pytest.raises(StripeConfigError, match="STRIPEMETER_LIVE=1"):
        gateway_from_settings(settings)


@pytest.mark.parametrize("key", ["sk_test_abc123", "rk_test_abc123"])
def test_live_mode_refuses_a_test_key_naming_the_setting(key: str) -> None:
    settings = load_settings(environ={}, STRIPE_SECRET_KEY=key, STRIPEMETER_LIVE=True)
    with pytest.raises(StripeConfigError) as refused:
        service_target(settings)
    assert str(refused.value) == (
        "STRIPEMETER_LIVE is on but STRIPE_SECRET_KEY is a test-mode key; use an "
        "sk_live_/rk_live_ key, or unset STRIPEMETER_LIVE (and drop --live) for test mode"
    )


def test_live_mode_without_a_key_is_refused_not_sent_to_the_emulator() -> None:
    settings = load_settings(environ={}, STRIPEMETER_LIVE=True)
    with pytest.raises(StripeConfigError, match="STRIPE_SECRET_KEY is not set"):
        service_target(settings)
    assert service_mode(settings) == "refused"


@pytest.mark.parametrize("key", ["pk_live_abc", "sk_live_", "whatever"])
def test_live_mode_refuses_a_key_that_is_no_live_secret_key(key: str) -> None:
    settings = load_settings(environ={}, STRIPE_SECRET_KEY=key, STRIPEMETER_LIVE=True)
    with pytest.raises(StripeConfigError, match=r"expected sk_live_\.\.\. or rk_live_\.\.\."):
        service_target(settings)


def test_live_mode_on_stripe_itself_names_the_mode_and_never_the_whole_key() -> None:
    settings = load_settings(environ={}, STRIPE_SECRET_KEY=RESTRICTED, STRIPEMETER_LIVE=True)
    target = service_target(settings)
    assert (target.key, target.base, target.mode) == (RESTRICTED, None, "live")
    assert target.describe() == "Stripe: live mode, key rk_live_…9876, https://api.stripe.com"
    assert target.warning is None
    assert service_mode(settings) == "live"


def test_live_mode_with_an_api_base_is_allowed_and_warned_about() -> None:
    settings = load_settings(
        environ={},
        STRIPE_SECRET_KEY=LIVE,
        STRIPEMETER_LIVE=True,
        STRIPE_API_BASE="http://127.0.0.1:8999",
    )
    target = service_target(settings)
    assert (target.base, target.mode) == ("http://127.0.0.1:8999", "live")
    assert target.describe() == "Stripe: live mode, key sk_live_…1234, http://127.0.0.1:8999"
    assert target.warning == (
        "LIVE MODE against STRIPE_API_BASE=http://127.0.0.1:8999, not https://api.stripe.com: "
        "live keys and real billing data go to that address"
    )


def test_test_mode_and_emulator_mode_are_named() -> None:
    test = service_target(load_settings(environ={}, STRIPE_SECRET_KEY="sk_test_abcdef5678"))
    assert test.describe() == "Stripe: test mode, key sk_test_…5678, https://api.stripe.com"
    emulator = service_target(load_settings(environ={}))
    assert (emulator.key, emulator.mode) == (EMULATOR_KEY, "emulator")
    assert emulator.describe() == f"Stripe: emulator at {DEFAULT_EMULATOR_BASE}"


def test_a_live_key_sent_to_the_emulator_is_refused_by_the_emulator(emulator_url: str) -> None:
    settings = load_settings(
        environ={},
        STRIPE_SECRET_KEY=LIVE,
        STRIPEMETER_LIVE=True,
        STRIPE_API_BASE=emulator_url,
    )
    gateway = gateway_from_settings(settings, retry=RetryPolicy(attempts=3))
    with pytest.raises(StripeKeyRefused) as refused:
        gateway.clock_time("cus_any")
    assert refused.value.code == "api_key_refused"
    assert "AuthenticationError (401)" in str(refused.value)
    assert "accepts only test-mode secret keys" in str(refused.value)
    assert LIVE not in str(refused.value)


def test_live_mode_reaches_a_stand_in_that_answers_like_stripe() -> None:
    with running_live_standin() as (base, standin):
        settings = load_settings(
            environ={}, STRIPE_SECRET_KEY=RESTRICTED, STRIPEMETER_LIVE=True, STRIPE_API_BASE=base
        )
        gateway = gateway_from_settings(settings)
        customer = gateway.client.v1.customers.create({"email": "live@example.com"})
        assert gateway.clock_time(customer.id) is None
        assert standin.requests[-1] == ("GET", f"/v1/customers/{customer.id}", "rk_live_")


def test_a_missing_permission_is_one_line_naming_it_and_the_call_without_retries() -> None:
    withheld = {("GET", "/v1/prices/price_live1"): "rak_plan_read"}
    with running_live_standin(withheld) as (base, standin):
        client = make_client(RESTRICTED, base, max_network_retries=0, live="on")
        gateway = StripeGateway(client, account=f"acct_{uuid.uuid4().hex[:6]}")
        with pytest.raises(StripePermissionMissing) as missing:
            gateway.price_meter("price_live1")
        assert standin.calls("GET", "/v1/prices/price_live1") == 1
    assert str(missing.value) == (
        "retrieve price price_live1: the Stripe key lacks the 'rak_plan_read' permission "
        "(403); grant it to the restricted key in the Stripe Dashboard (Developers > API keys)"
    )
    assert missing.value.permission == "rak_plan_read"
    assert missing.value.code == "permission_missing"
    assert "\n" not in str(missing.value)


def test_a_403_naming_no_permission_still_says_the_key_may_not_make_the_call() -> None:
    with running_live_standin({("GET", "/v1/customers/cus_1"): None}) as (base, standin):
        client = make_client(RESTRICTED, base, max_network_retries=0, live="on")
        gateway = StripeGateway(client, account=f"acct_{uuid.uuid4().hex[:6]}")
        with pytest.raises(StripePermissionMissing) as missing:
            gateway.clock_time("cus_1")
        assert standin.calls("GET", "/v1/customers/cus_1") == 1
    assert missing.value.permission is None
    assert str(missing.value) == (
        "retrieve customer cus_1: the Stripe key may not make this call (403; Stripe names "
        "no permission a restricted key could be given); use a key with access to it"
    )


def test_only_restricted_keys_meet_withheld_permissions() -> None:
    with running_live_standin({("GET", "/v1/customers/cus_x"): "rak_customer_read"}) as (base, _):
        client = make_client(LIVE, base, max_network_retries=0, live="on")
        with pytest.raises(stripe.InvalidRequestError) as missing:
            client.v1.customers.retrieve("cus_x")
    assert missing.value.http_status == 404
