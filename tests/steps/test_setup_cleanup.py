"""setup and cleanup against a real emulator and a real PostgreSQL (no API needed)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import stripe

from tests.steps.conftest import StepRunner
from tests.support.emulator import running_emulator, sdk_client


@pytest.fixture
def emulator() -> Iterator[str]:
    with running_emulator(advance_delay_s=0.02) as base_url:
        yield base_url


def mappings(db_url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "SELECT tenant_id::text, metric, aggregation, stripe_account, price_id,"
            " subscription_item_id, currency, active FROM price_mappings ORDER BY created_at"
        ).fetchall()


def read_state(state_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state_dir / ".state.json").read_text())
    return data


def test_setup_builds_the_timeline_and_maps_the_price(
    call_step: StepRunner, emulator: str, db_url: str, tmp_path: Path
) -> None:
    env = {"DEMO_STATE_DIR": str(tmp_path), "STRIPE_API_BASE": emulator, "DATABASE_URL": db_url}
    before = int(time.time())
    result = call_step("setup", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    state = read_state(tmp_path)
    assert state["setupComplete"] is True and state["stripeApiBase"] == emulator

    client = sdk_client(emulator)
    clock = client.v1.test_helpers.test_clocks.retrieve(state["testClockId"])
    assert clock.status == "ready"
    assert clock.frozen_time == state["frozenTime"]
    assert before - 300 <= state["frozenTime"] <= int(time.time()) - 300  # F = now - 5 min
    assert before - 26 * 3600 <= state["periodStart"] <= int(time.time()) - 26 * 3600
    price = client.v1.prices.retrieve(state["priceId"])
    assert (price.unit_amount, price.recurring.usage_type) == (5, "metered")
    assert price.recurring.meter == state["meterId"]
    customer = client.v1.customers.retrieve(state["customerId"])
    assert customer.test_clock == state["testClockId"]
    assert customer.invoice_settings.default_payment_method == state["paymentMethodId"]
    assert state["paymentMethodId"] != "pm_card_visa"  # the attached copy, not the template
    item = client.v1.subscription_items.retrieve(state["subscriptionItemId"])
    assert (item.current_period_start, item.current_period_end) == (
        state["periodStart"],
        state["periodEnd"],
    )
    assert mappings(db_url) == [
        (
            state["tenantId"],
            "api_calls",
            "sum",
            "default",
            state["priceId"],
            state["subscriptionItemId"],
            "USD",
            True,
        )
    ]


def test_setup_reuses_its_objects_and_recreates_them_when_the_clock_is_gone(
    call_step: StepRunner, emulator: str, db_url: str, tmp_path: Path
) -> None:
    env = {"DEMO_STATE_DIR": str(tmp_path), "STRIPE_API_BASE": emulator, "DATABASE_URL": db_url}
    assert call_step("setup", env=env).returncode == 0
    first = read_state(tmp_path)
    meters_before = len(sdk_client(emulator).v1.billing.meters.list().data)

    again = call_step("setup", env=env)
    assert again.returncode == 0
    assert "reusing the demo objects" in again.stdout
    assert read_state(tmp_path) == first
    assert len(mappings(db_url)) == 1

    sdk_client(emulator).v1.test_helpers.test_clocks.delete(first["testClockId"])
    recreated = call_step("setup", env=env)
    assert recreated.returncode == 0, recreated.stderr
    assert f"test clock {first['testClockId']} no longer exists" in recreated.stdout
    second = read_state(tmp_path)
    assert second["tenantId"] != first["tenantId"]
    assert second["testClockId"] != first["testClockId"]
    assert second["meterId"] == first["meterId"]  # the api_calls meter is reused
    assert len(sdk_client(emulator).v1.billing.meters.list().data) == meters_before
    assert [row[0] for row in mappings(db_url)] == [second["tenantId"]]


def test_fresh_setup_retires_the_previous_clock_mapping_and_invoice(
    call_step: StepRunner, emulator: str, db_url: str, tmp_path: Path
) -> None:
    env = {"DEMO_STATE_DIR": str(tmp_path), "STRIPE_API_BASE": emulator, "DATABASE_URL": db_url}
    assert call_step("setup", env=env).returncode == 0
    first = read_state(tmp_path)
    (tmp_path / "invoice.json").write_text('{"id": "in_of_the_first_run"}')
    assert call_step("setup", "--fresh", env=env).returncode == 0
    assert not (tmp_path / "invoice.json").exists()
    with pytest.raises(stripe.InvalidRequestError) as missing:
        sdk_client(emulator).v1.test_helpers.test_clocks.retrieve(first["testClockId"])
    assert missing.value.code == "resource_missing"
    assert [row[0] for row in mappings(db_url)] == [read_state(tmp_path)["tenantId"]]


def test_cleanup_deletes_clock_and_mapping_and_is_idempotent(
    call_step: StepRunner, emulator: str, db_url: str, tmp_path: Path
) -> None:
    env = {"DEMO_STATE_DIR": str(tmp_path), "STRIPE_API_BASE": emulator, "DATABASE_URL": db_url}
    assert call_step("setup", env=env).returncode == 0
    state = read_state(tmp_path)

    first = call_step("cleanup", env=env)
    assert first.returncode == 0, first.stderr
    assert f"deleted test clock {state['testClockId']}" in first.stdout
    assert "deleted 1 price mapping row(s)" in first.stdout
    assert mappings(db_url) == []
    with pytest.raises(stripe.InvalidRequestError):
        sdk_client(emulator).v1.customers.retrieve(state["customerId"])  # cascaded
    assert read_state(tmp_path)["cleanedUp"] is True

    second = call_step("cleanup", env=env)
    assert second.returncode == 0, second.stderr
    assert "was already gone" in second.stdout
    assert "deleted 0 price mapping row(s)" in second.stdout
