"""The v2 meter event stream (docs/writer-transports.md): sessions, batches, Stripe's 401
for an expired token, shape refusals at once, content checked per event afterwards, and
one store with v1 (same identifier window, same summaries). Driven with the real SDK."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import stripe

from stripe_emulator.meter_event_stream import SESSION_TTL_S
from tests.stripe_emulator.helpers import metered_price, send_event


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _event(cus_id: str, ts: int, value: int, identifier: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_name": "api_calls",
        "identifier": identifier,
        "timestamp": _iso(ts),
        "payload": {"stripe_customer_id": cus_id, "value": str(value)},
        **extra,
    }


def _stream(client: stripe.StripeClient, token: str, events: list[dict[str, Any]]) -> None:
    client.v2.billing.meter_event_stream.create({"events": events}, {"api_key": token})  # type: ignore[typeddict-item]


def _summary(client: stripe.StripeClient, meter_id: str, cus_id: str, now: int) -> float:
    page = client.v1.billing.meters.event_summaries.list(
        meter_id,
        {
            "customer": cus_id,
            "start_time": (now - 7200) // 60 * 60,
            "end_time": now // 60 * 60 + 60,
        },
    )
    return float(page.data[0].aggregated_value)


def _rejections(base_url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = requests.get(
        f"{base_url}/_emulator/meter_event_stream/rejections", timeout=5
    ).json()["data"]
    return found


def test_a_session_token_lasts_fifteen_minutes(client: stripe.StripeClient) -> None:
    before = int(time.time())
    session = client.v2.billing.meter_event_session.create()
    assert session.object == "v2.billing.meter_event_session"
    assert session.livemode is False and session.authentication_token
    created = int(datetime.fromisoformat(session.created).timestamp())
    expires = int(datetime.fromisoformat(session.expires_at).timestamp())
    assert before - 1 <= created <= before + 2
    assert expires - created == SESSION_TTL_S


def test_stream_events_land_in_the_same_store_as_v1_with_one_identifier_window(
    client: stripe.StripeClient, base_url: str
) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    now = int(time.time())
    send_event(client, cus.id, now - 600, 4, "v1-first")
    token = client.v2.billing.meter_event_session.create().authentication_token
    _stream(
        client,
        token,
        [
            _event(cus.id, now - 300, 6, "s1"),
            _event(cus.id, now - 300, 6, "s1"),  # twice in one request: counted once
            _event(cus.id, now - 200, 9, "v1-first"),  # v1 already used this identifier
        ],
    )
    assert _summary(client, meter.id, cus.id, now) == 10.0
    with pytest.raises(stripe.InvalidRequestError) as refused:  # and v1 sees s1 as used
        send_event(client, cus.id, now - 100, 1, "s1")
    assert refused.value.code == "resource_already_exists"
    assert [(r["identifier"], r["code"]) for r in _rejections(base_url)] == [
        ("s1", "resource_already_exists"),
        ("v1-first", "resource_already_exists"),
    ]


def test_events_stripe_would_reject_are_dropped_after_the_answer_not_refused(
    client: stripe.StripeClient, base_url: str
) -> None:
    meter, _ = metered_price(client)
    cus = client.v1.customers.create({})
    now = int(time.time())
    token = client.v2.billing.meter_event_session.create().authentication_token
    _stream(
        client,
        token,
        [
            _event("cus_missing", now - 60, 1, "x1"),
            _event(cus.id, now - 40 * 86400, 1, "x2"),
            _event(cus.id, now - 60, 1, "x3", event_name="no_such_meter"),
            _event(cus.id, now - 60, 2, "ok"),
        ],
    )
    assert _summary(client, meter.id, cus.id, now) == 2.0
    assert [(r["identifier"], r["code"]) for r in _rejections(base_url)] == [
        ("x1", "meter_event_customer_not_found"),
        ("x2", "timestamp_too_far_in_past"),
        ("x3", "no_meter"),
    ]


@pytest.mark.parametrize(
    ("events", "param"),
    [
        ([], "events"),
        ([{"event_name": "api_calls", "payload": {}}] * 101, "events"),
        ([{"event_name": "api_calls", "payload": {}, "value": "1"}], "events[0][value]"),
        ([{"payload": {"value": "1"}}], "events[0][event_name]"),
        (
            [{"event_name": "api_calls", "payload": {}, "timestamp": "yesterday"}],
            "events[0][timestamp]",
        ),
    ],
    ids=["empty", "101-events", "unknown-field", "no-event-name", "bad-timestamp"],
)
def test_a_malformed_request_is_refused_whole_naming_the_field(
    client: stripe.StripeClient, base_url: str, events: list[dict[str, Any]], param: str
) -> None:
    metered_price(client)
    token = client.v2.billing.meter_event_session.create().authentication_token
    with pytest.raises(stripe.InvalidRequestError) as refused:
        _stream(client, token, events)
    assert refused.value.http_status == 400
    assert refused.value.error is not None and refused.value.error.param == param
    assert _rejections(base_url) == []


def test_an_expired_token_is_stripes_401_and_an_unknown_one_is_refused(
    client: stripe.StripeClient, base_url: str
) -> None:
    metered_price(client)
    cus = client.v1.customers.create({})
    token = client.v2.billing.meter_event_session.create().authentication_token
    event = _event(cus.id, int(time.time()) - 60, 1, "e1")
    assert requests.post(f"{base_url}/_emulator/meter_event_stream/expire", timeout=5).ok
    with pytest.raises(stripe.TemporarySessionExpiredError) as expired:
        _stream(client, token, [event])
    assert (expired.value.http_status, expired.value.code) == (
        401,
        "billing_meter_event_session_expired",
    )
    with pytest.raises(stripe.AuthenticationError):
        _stream(client, "mes_test_never_issued", [event])
    with pytest.raises(stripe.AuthenticationError):  # the secret key is not a session token
        _stream(client, "sk_test_emulator_tests", [event])
    fresh = client.v2.billing.meter_event_session.create().authentication_token
    _stream(client, fresh, [event])


def test_a_session_takes_no_parameters_and_a_v2_body_must_be_a_json_object(
    client: stripe.StripeClient, base_url: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v2.billing.meter_event_session.create({"ttl": 60})  # type: ignore[arg-type]
    assert refused.value.code == "parameter_unknown"
    answer = requests.post(
        f"{base_url}/v2/billing/meter_event_session",
        data="[1, 2]",
        headers={"Authorization": "Bearer sk_test_x1", "Content-Type": "application/json"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == "The request body must be a JSON object."
