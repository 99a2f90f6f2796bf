"""Meter events, summaries and adjustments (facts §3.2-§3.5)."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.stripe_emulator.helpers import advance, clock_customer, metered_price, send_event


def _summary(
    client: stripe.StripeClient, meter_id: str, cus_id: str, start: int, end: int
) -> float:
    page = client.v1.billing.meters.event_summaries.list(
        meter_id, {"customer": cus_id, "start_time": start, "end_time": end}
    )
    return float(page.data[0].aggregated_value)


def _minute(ts: int) -> int:
    return ts // 60 * 60


def test_event_fields_and_sum(client: stripe.StripeClient) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    now = int(time.time())
    ev = send_event(client, cus.id, now - 120, 4, "a")
    assert (ev.object, ev.event_name, ev.identifier, ev.timestamp) == (
        "billing.meter_event",
        "api_calls",
        "a",
        now - 120,
    )
    assert ev.payload.to_dict() == {"stripe_customer_id": cus.id, "value": "4"}
    send_event(client, cus.id, now - 60, 6, "b")
    assert _summary(client, meter.id, cus.id, _minute(now - 3600), _minute(now) + 60) == 10.0


def test_duplicate_identifier_is_resource_already_exists(client: stripe.StripeClient) -> None:
    metered_price(client)
    cus = client.v1.customers.create({})
    now = int(time.time())
    send_event(client, cus.id, now - 10, 1, "dup-1")
    with pytest.raises(stripe.InvalidRequestError) as err:
        send_event(client, cus.id, now - 5, 2, "dup-1")
    assert (err.value.http_status, err.value.code, err.value.param) == (
        400,
        "resource_already_exists",
        "identifier",
    )
    assert "dup-1" in str(err.value.user_message)


def test_value_must_be_whole_number(client: stripe.StripeClient) -> None:
    metered_price(client)
    cus = client.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create(
            {"event_name": "api_calls", "payload": {"stripe_customer_id": cus.id, "value": "1.5"}}
        )
    assert (err.value.code, err.value.param) == ("meter_event_invalid_value", "payload[value]")


def test_missing_customer_key_and_unknown_customer(client: stripe.StripeClient) -> None:
    metered_price(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_events.create(
            {"event_name": "api_calls", "payload": {"value": "1"}}
        )
    assert (err.value.code, err.value.param) == (
        "meter_event_no_customer_defined",
        "payload[stripe_customer_id]",
    )
    with pytest.raises(stripe.InvalidRequestError) as err2:
        client.v1.billing.meter_events.create(
            {"event_name": "api_calls", "payload": {"stripe_customer_id": "cus_x", "value": "1"}}
        )
    assert (err2.value.code, err2.value.param) == (
        "meter_event_customer_not_found",
        "payload[stripe_customer_id]",
    )


def test_unknown_event_name_and_payload_required(client: stripe.StripeClient) -> None:
    cus = client.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as err:
        send_event(client, cus.id, int(time.time()), 1, "x", event_name="nothing")
    assert (err.value.code, err.value.param) == ("no_meter", "event_name")
    with pytest.raises(stripe.InvalidRequestError) as err2:
        client.v1.billing.meter_events.create({"event_name": "nothing"})  # type: ignore[typeddict-item]
    assert (err2.value.code, err2.value.param) == ("parameter_missing", "payload")


def test_deactivated_meter_refuses_events(client: stripe.StripeClient) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    client.v1.billing.meters.deactivate(meter.id)
    with pytest.raises(stripe.InvalidRequestError) as err:
        send_event(client, cus.id, int(time.time()), 1, "x")
    assert (err.value.code, err.value.param) == ("archived_meter", "event_name")


def test_timestamp_older_than_35_days_is_refused(client: stripe.StripeClient) -> None:
    metered_price(client)
    cus = client.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as err:
        send_event(client, cus.id, int(time.time()) - 35 * 86400 - 60, 1, "old")
    assert (err.value.code, err.value.param) == ("timestamp_too_far_in_past", "timestamp")


def test_timestamp_more_than_5_minutes_ahead_is_refused(client: stripe.StripeClient) -> None:
    metered_price(client)
    cus = client.v1.customers.create({})
    with pytest.raises(stripe.InvalidRequestError) as err:
        send_event(client, cus.id, int(time.time()) + 400, 1, "future")
    assert (err.value.code, err.value.param) == ("timestamp_in_future", "timestamp")
    assert send_event(client, cus.id, int(time.time()) + 200, 1, "near").identifier == "near"


def test_clock_customer_event_after_frozen_time_is_refused(client: stripe.StripeClient) -> None:
    metered_price(client)
    now = int(time.time())
    _, cus = clock_customer(client, now - 7200, card=None)
    with pytest.raises(stripe.InvalidRequestError) as err:
        send_event(client, cus.id, now - 3600, 1, "ahead-of-clock")
    assert (err.value.code, err.value.param) == ("timestamp_in_future", "timestamp")
    assert "The event timestamp cannot be in future" in str(err.value.user_message)
    assert send_event(client, cus.id, now - 7200, 1, "at-clock").timestamp == now - 7200


def test_clock_customer_default_timestamp_is_clock_time(client: stripe.StripeClient) -> None:
    metered_price(client)
    now = int(time.time())
    clock, cus = clock_customer(client, now - 7200, card=None)
    advance(client, clock.id, now - 600)
    ev = client.v1.billing.meter_events.create(
        {"event_name": "api_calls", "payload": {"stripe_customer_id": cus.id, "value": "2"}}
    )
    assert ev.timestamp == now - 600
    assert ev.identifier


def test_count_and_last_formulas(client: stripe.StripeClient) -> None:
    count_meter, _ = metered_price(client, event_name="hits", formula="count")
    last_meter, _ = metered_price(client, event_name="seats", formula="last")
    cus = client.v1.customers.create({})
    now = int(time.time())
    for i, v in enumerate([5, 9, 3]):
        send_event(client, cus.id, now - 300 + i * 60, v, f"h{i}", event_name="hits")
        send_event(client, cus.id, now - 300 + i * 60, v, f"s{i}", event_name="seats")
    start, end = _minute(now - 3600), _minute(now) + 60
    assert _summary(client, count_meter.id, cus.id, start, end) == 3.0
    assert _summary(client, last_meter.id, cus.id, start, end) == 3.0


def test_summary_needs_minute_alignment_and_customer(client: stripe.StripeClient) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    now = _minute(int(time.time()))
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.event_summaries.list(
            meter.id, {"customer": cus.id, "start_time": now - 3599, "end_time": now}
        )
    assert (err.value.code, err.value.param) == ("parameter_invalid_integer", "start_time")
    with pytest.raises(stripe.InvalidRequestError) as err2:
        client.v1.billing.meters.event_summaries.list(
            meter.id,
            {"start_time": now - 3600, "end_time": now},  # type: ignore[typeddict-item]
        )
    assert (err2.value.code, err2.value.param) == ("parameter_missing", "customer")


def test_summary_hour_grouping_windows(client: stripe.StripeClient) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    hour = int(time.time()) // 3600 * 3600
    send_event(client, cus.id, hour - 3600 + 10, 2, "h1")
    send_event(client, cus.id, hour - 3600 + 20, 3, "h2")
    send_event(client, cus.id, hour - 7200 + 5, 7, "h3")
    page = client.v1.billing.meters.event_summaries.list(
        meter.id,
        {
            "customer": cus.id,
            "start_time": hour - 7200,
            "end_time": hour,
            "value_grouping_window": "hour",
        },
    )
    assert [(s.start_time, s.end_time, s.aggregated_value) for s in page.data] == [
        (hour - 3600, hour, 5.0),
        (hour - 7200, hour - 3600, 7.0),
    ]
    assert page.data[0].object == "billing.meter_event_summary"
    assert page.data[0].meter == meter.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.event_summaries.list(
            meter.id,
            {
                "customer": cus.id,
                "start_time": hour - 7200 + 60,
                "end_time": hour,
                "value_grouping_window": "hour",
            },
        )
    assert err.value.param == "start_time"


def test_summary_day_grouping_needs_midnight(client: stripe.StripeClient) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    day = int(time.time()) // 86400 * 86400
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meters.event_summaries.list(
            meter.id,
            {
                "customer": cus.id,
                "start_time": day - 3600,
                "end_time": day,
                "value_grouping_window": "day",
            },
        )
    assert err.value.param == "start_time"
    page = client.v1.billing.meters.event_summaries.list(
        meter.id,
        {
            "customer": cus.id,
            "start_time": day - 86400,
            "end_time": day,
            "value_grouping_window": "day",
        },
    )
    assert [s.aggregated_value for s in page.data] == [0.0]


def test_cancel_adjustment_removes_event_from_aggregate(client: stripe.StripeClient) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    now = int(time.time())
    send_event(client, cus.id, now - 60, 10, "keep")
    send_event(client, cus.id, now - 60, 5, "drop")
    adj = client.v1.billing.meter_event_adjustments.create(
        {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "drop"}}
    )
    assert (adj.object, adj.type, adj.cancel.identifier) == (
        "billing.meter_event_adjustment",
        "cancel",
        "drop",
    )
    assert _summary(client, meter.id, cus.id, _minute(now - 3600), _minute(now) + 60) == 10.0


def test_cancel_unknown_identifier_is_refused(client: stripe.StripeClient) -> None:
    metered_price(client)
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.billing.meter_event_adjustments.create(
            {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "nope"}}
        )
    assert (err.value.code, err.value.param) == ("resource_missing", "cancel[identifier]")
    with pytest.raises(stripe.InvalidRequestError) as err2:
        client.v1.billing.meter_event_adjustments.create(
            {"event_name": "api_calls", "type": "cancel"}
        )
    assert (err2.value.code, err2.value.param) == ("parameter_missing", "cancel[identifier]")


def test_concurrent_duplicates_count_once(client: stripe.StripeClient, base_url: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.emulator import sdk_client

    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    now = int(time.time())

    def attempt(_: int) -> str:
        try:
            send_event(sdk_client(base_url), cus.id, now - 30, 5, "same-delta")
            return "ok"
        except stripe.InvalidRequestError as err:
            return str(err.code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(attempt, range(8)))
    assert outcomes == ["ok"] + ["resource_already_exists"] * 7
    assert _summary(client, meter.id, cus.id, _minute(now - 3600), _minute(now) + 60) == 5.0
