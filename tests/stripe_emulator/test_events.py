"""`GET /v1/events` and `GET /v1/events/{id}`: shape, filters, pagination, pending_webhooks."""

from __future__ import annotations

import time
import typing
from typing import Any

import pytest
import stripe
from stripe.params._webhook_endpoint_create_params import WebhookEndpointCreateParams

from stripe_emulator.events import EVENT_TYPES
from tests.stripe_emulator import sdk_schema
from tests.stripe_emulator.helpers import advance, metered_price
from tests.stripe_emulator.test_webhooks import Receiver, dead_url, verified


def _sdk_keys(cls: type) -> set[str]:
    return {
        k for k, v in cls.__annotations__.items() if k != "OBJECT_NAME" and "ClassVar" not in str(v)
    }


def _subscribe(client: stripe.StripeClient) -> Any:
    _, price = metered_price(client)
    cus = client.v1.customers.create({"email": "ev@example.com"})
    return client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})


def _types(page: Any) -> list[str]:
    return [e.type for e in page.data]


def test_known_event_types_are_the_sdk_enabled_events_list() -> None:
    literal = typing.get_args(WebhookEndpointCreateParams.__annotations__["enabled_events"])[0]
    assert set(typing.get_args(literal)) - {"*"} == EVENT_TYPES
    assert len(EVENT_TYPES) == 275


def test_event_shape_matches_the_sdk(client: stripe.StripeClient) -> None:
    sub = _subscribe(client)
    client.v1.subscriptions.update(sub.id, {"description": "renamed"})
    events = client.v1.events.list({"limit": 100}).data
    # `account` and `context` are only on events from connected accounts (Connect).
    keys = _sdk_keys(stripe.Event) - {"account", "context"}
    for event in events:
        assert set(event.to_dict()) == keys
        assert sdk_schema.check(event.to_dict(), stripe.Event) == []
        assert event.id.startswith("evt_") and event.object == "event"
        assert (event.api_version, event.livemode, event.pending_webhooks) == (
            "2026-10-28.endive",
            False,
            0,
        )
        assert event.request.to_dict() == {"id": None, "idempotency_key": None}
    updated = next(e for e in events if e.type == "customer.subscription.updated")
    assert set(updated.data.to_dict()) == {"object", "previous_attributes"}
    assert updated.data.previous_attributes.to_dict() == {"description": None}
    assert updated.data.object["description"] == "renamed"
    created = next(e for e in events if e.type == "customer.subscription.created")
    assert set(created.data.to_dict()) == {"object"}
    assert created.data.object["id"] == sub.id
    again = client.v1.events.retrieve(created.id)
    assert again.to_dict() == created.to_dict()


def test_list_is_newest_first_with_cursors(client: stripe.StripeClient) -> None:
    _subscribe(client)
    everything = client.v1.events.list()
    assert everything.url == "/v1/events"
    # The subscription is stored (and its event recorded) after its first invoice is paid.
    assert _types(everything) == [
        "customer.subscription.created",
        "invoice.paid",
        "invoice.finalized",
        "invoice.created",
    ]
    ids = [e.id for e in everything.data]
    first = client.v1.events.list({"limit": 2})
    assert ([e.id for e in first.data], first.has_more) == (ids[:2], True)
    rest = client.v1.events.list({"limit": 2, "starting_after": ids[1]})
    assert ([e.id for e in rest.data], rest.has_more) == (ids[2:], False)
    before = client.v1.events.list({"ending_before": ids[2]})
    assert [e.id for e in before.data] == ids[:2]
    assert [e.id for e in client.v1.events.list().auto_paging_iter()] == ids


def test_type_wildcard_types_and_created_filters(client: stripe.StripeClient) -> None:
    _subscribe(client)
    assert _types(client.v1.events.list({"type": "invoice.paid"})) == ["invoice.paid"]
    assert _types(client.v1.events.list({"type": "invoice.*"})) == [
        "invoice.paid",
        "invoice.finalized",
        "invoice.created",
    ]
    assert _types(client.v1.events.list({"type": "*.created"})) == [
        "customer.subscription.created",
        "invoice.created",
    ]
    assert _types(client.v1.events.list({"type": "invoice"})) == []
    assert _types(
        client.v1.events.list({"types": ["customer.subscription.created", "invoice.finalized"]})
    ) == ["customer.subscription.created", "invoice.finalized"]
    now = int(time.time())
    early = client.v1.test_helpers.test_clocks.create({"frozen_time": now - 5000})
    late = client.v1.test_helpers.test_clocks.create({"frozen_time": now - 4000})
    advance(client, early.id, now - 3000)
    advance(client, late.id, now - 2000)
    ready = {"type": "test_helpers.test_clock.ready"}
    in_order = [e.data.object["id"] for e in client.v1.events.list(ready).data]
    assert in_order == [late.id, early.id]
    only = client.v1.events.list({**ready, "created": now - 3000})  # type: ignore[arg-type]
    assert [e.data.object["id"] for e in only.data] == [early.id]
    after = client.v1.events.list({**ready, "created": {"gt": now - 3000}})  # type: ignore[arg-type]
    assert [e.data.object["id"] for e in after.data] == [late.id]
    assert client.v1.events.list({**ready, "created": {"lt": now - 3000}}).data == []  # type: ignore[arg-type]


def test_delivery_success_and_pending_webhooks_follow_acknowledgements(
    client: stripe.StripeClient,
) -> None:
    recv = Receiver()
    try:
        ok = client.v1.webhook_endpoints.create(
            {"url": recv.url, "enabled_events": ["invoice.paid"]}
        )
        dead = client.v1.webhook_endpoints.create(
            {"url": dead_url(), "enabled_events": ["customer.subscription.created"]}
        )
        _subscribe(client)
        got = recv.wait_for(lambda g: len(g) >= 1)
        assert verified(got[0], ok.secret).type == "invoice.paid"
        deadline = time.monotonic() + 5
        while client.v1.events.list({"type": "invoice.paid"}).data[0].pending_webhooks:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        pending = [(e.type, e.pending_webhooks) for e in client.v1.events.list().data]
        assert pending == [
            ("customer.subscription.created", 1),
            ("invoice.paid", 0),
            ("invoice.finalized", 0),
            ("invoice.created", 0),
        ]
        assert _types(client.v1.events.list({"delivery_success": False})) == [
            "customer.subscription.created"
        ]
        assert _types(client.v1.events.list({"delivery_success": True})) == [
            "invoice.paid",
            "invoice.finalized",
            "invoice.created",
        ]
        assert dead.status == "enabled"
    finally:
        recv.close()


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"type": "invoice.paid", "types": ["invoice.created"]}, "types", None),
        ({"types": [f"invoice.t{n}" for n in range(21)]}, "types", None),
        ({"limit": 0}, "limit", "parameter_invalid_integer"),
        ({"delivery_success": "maybe"}, "delivery_success", None),
        ({"starting_after": "evt_missing"}, "starting_after", "resource_missing"),
        ({"object": "event"}, "object", "parameter_unknown"),
    ],
)
def test_bad_list_params_are_400_or_404(
    client: stripe.StripeClient, params: dict[str, Any], param: str, code: str | None
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.events.list(params)  # type: ignore[arg-type]
    assert (err.value.param, err.value.code) == (param, code)
    assert err.value.http_status in (400, 404)


def test_retrieve_unknown_event_is_404(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.events.retrieve("evt_missing")
    assert (err.value.http_status, err.value.code, err.value.param) == (
        404,
        "resource_missing",
        "id",
    )
    assert "No such event: 'evt_missing'" in str(err.value.user_message)
