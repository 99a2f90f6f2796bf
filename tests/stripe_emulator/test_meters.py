"""Billing meters (facts §3.1)."""

from __future__ import annotations

import pytest
import stripe


def _create(
    client: stripe.StripeClient, event_name: str = "api_calls", **extra: object
) -> stripe.billing.Meter:
    params = {
        "display_name": "API calls",
        "event_name": event_name,
        "default_aggregation": {"formula": "sum"},
        **extra,
    }
    return client.v1.billing.meters.create(params)  # type: ignore[arg-type]


def test_create_defaults_and_fields(client: stripe.StripeClient) -> None:
    meter = _create(client)
    assert meter.id.startswith("mtr_")
    assert (meter.object, meter.status, meter.event_name, meter.display_name) == (
        "billing.meter",
        "active",
        "api_calls",
        "API calls",
    )
    assert meter.default_aggregation.formula == "sum"
    assert meter.customer_mapping.event_payload_key == "stripe_customer_id"
    assert meter.customer_mapping.type == "by_id"
    assert meter.value_settings.event_payload_key == "value"


def test_custom_payload_keys(client: stripe.StripeClient) -> None:
    meter = _create(
        client,
        customer_mapping={"type": "by_id", "event_payload_key": "cust"},
        value_settings={"event_payload_key": "n"},
    )
    assert meter.customer_mapping.event_payload_key == "cust"
    assert meter.value_settings.event_payload_key == "n"


def test_event_name_is_unique_among_meters(client: stripe.StripeClient) -> None:
    _create(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        _create(client)
    assert (err.value.code, err.value.param) == ("resource_already_exists", "event_name")


@pytest.mark.parametrize("formula", ["sum", "count", "last"])
def test_formulas_accepted(client: stripe.StripeClient, formula: str) -> None:
    meter = _create(client, default_aggregation={"formula": formula})
    assert meter.default_aggregation.formula == formula


def test_unknown_formula_is_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        _create(client, default_aggregation={"formula": "max"})
    assert err.value.param == "default_aggregation[formula]"


def test_update_only_display_name(client: stripe.StripeClient) -> None:
    meter = _create(client)
    assert (
        client.v1.billing.meters.update(meter.id, {"display_name": "Calls"}).display_name == "Calls"
    )
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.update(meter.id, {"event_name": "other"})  # type: ignore[typeddict-unknown-key]
    assert (err.value.code, err.value.param) == ("parameter_unknown", "event_name")


def test_deactivate_reactivate_and_list_filter(client: stripe.StripeClient) -> None:
    meter = _create(client)
    off = client.v1.billing.meters.deactivate(meter.id)
    assert off.status == "inactive"
    assert off.status_transitions.deactivated_at is not None
    assert [m.id for m in client.v1.billing.meters.list({"status": "inactive"}).data] == [meter.id]
    assert client.v1.billing.meters.list({"status": "active"}).data == []
    on = client.v1.billing.meters.reactivate(meter.id)
    assert (on.status, on.status_transitions.deactivated_at) == ("active", None)
    assert client.v1.billing.meters.retrieve(meter.id).status == "active"
