"""Webhook endpoints and signed delivery, received by a real HTTP server on 127.0.0.1.

Every delivery is checked with `stripe.Webhook.construct_event` and the endpoint's
`whsec_` secret, exactly as an integration's webhook handler would.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe

from stripe_emulator.app import create_app
from tests.stripe_emulator import sdk_schema
from tests.stripe_emulator.helpers import advance, clock_customer, metered_price, send_event
from tests.support.emulator import sdk_client
from tests.support.servers import free_port, serve_asgi

FAST = {"retry_base_s": 0.05, "retry_max_s": 0.2}
DEFAULTS = {"retry_base_s": 1.0, "retry_max_s": 60.0, "max_attempts": 8, "timeout_s": 10.0}


@dataclass
class Received:
    """One POST the receiver got."""

    body: bytes
    headers: dict[str, str]
    answered: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    """A webhook receiver: answers `statuses` in turn for the first POSTs, then 200."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.statuses = list(statuses)
        self.got: list[Received] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.cond:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.got.append(Received(body, headers, status))
                    receiver.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def types(self) -> list[str]:
        with self.cond:
            return [r.event["type"] for r in self.got]

    def wait_for(
        self, pred: Callable[[list[Received]], bool], timeout: float = 10
    ) -> list[Received]:
        """Block until `pred(received so far)` holds; returns what was received."""
        with self.cond:
            if not self.cond.wait_for(lambda: pred(self.got), timeout=timeout):
                raise TimeoutError([r.event["type"] for r in self.got])
            return list(self.got)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    recv = Receiver()
    yield recv
    recv.close()


@pytest.fixture
def fast_retries(base_url: str) -> Iterator[None]:
    """Retries after 50-200 ms for one test; the defaults come back afterwards."""
    requests.post(f"{base_url}/_emulator/webhook_settings", json=FAST, timeout=5).raise_for_status()
    yield
    requests.post(
        f"{base_url}/_emulator/webhook_settings", json=DEFAULTS, timeout=5
    ).raise_for_status()


def deliveries(base_url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = requests.get(
        f"{base_url}/_emulator/webhook_deliveries", timeout=5
    ).json()["deliveries"]
    return rows


def wait_deliveries(
    base_url: str, pred: Callable[[list[dict[str, Any]]], bool], timeout: float = 10
) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout
    while True:
        rows = deliveries(base_url)
        if pred(rows):
            return rows
        if time.monotonic() > end:
            raise TimeoutError(rows)
        time.sleep(0.02)


def verified(received: Received, secret: str) -> stripe.Event:
    """The delivery as Stripe's own verification code parses it."""
    return stripe.Webhook.construct_event(
        received.body.decode("utf-8"), received.headers["stripe-signature"], secret
    )


def endpoint(client: stripe.StripeClient, url: str, *events: str) -> Any:
    return client.v1.webhook_endpoints.create({"url": url, "enabled_events": list(events)})


def clock_ready_event(client: stripe.StripeClient) -> Any:
    """The cheapest event: a test clock advanced to ready (`test_helpers.test_clock.ready`)."""
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": int(time.time()) - 3600})
    return advance(client, clock.id, int(time.time()) - 60)


def dead_url() -> str:
    """A loopback URL nothing listens on: every delivery attempt is refused."""
    return f"http://127.0.0.1:{free_port()}/hooks"


def test_renewal_invoice_created_then_after_grace_finalized_and_paid_verified(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    we = endpoint(client, receiver.url, "invoice.created", "invoice.finalized", "invoice.paid")
    secret = we.secret
    now = int(time.time())
    _, price = metered_price(client)
    clock, cus = clock_customer(client, now - 7200)
    sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    end = sub["items"].data[0].current_period_end
    advance(client, clock.id, now - 300)
    send_event(client, cus.id, now - 3600, 12, "wh-usage")
    advance(client, clock.id, end)  # the period ends: a draft renewal invoice

    def renewal(got: list[Received]) -> list[stripe.Event]:
        found = [verified(r, secret) for r in got]
        return [
            e for e in found if e.data.object["billing_reason"] == "subscription_cycle"
        ]  # the subscription_create invoice (0 usage) sends its own trio first

    receiver.wait_for(lambda g: len(renewal(g)) >= 1)
    time.sleep(0.2)  # nothing else may arrive while the clock sits inside the grace hour
    first = renewal(receiver.wait_for(lambda g: True))
    assert [e.type for e in first] == ["invoice.created"]
    draft = first[0].data.object
    assert (draft["status"], draft["total"]) == ("draft", 60)
    assert draft["parent"]["subscription_details"]["subscription"] == sub.id
    assert first[0].created == end and first[0].api_version == "2026-10-28.endive"

    advance(client, clock.id, end + 3601)  # past the grace hour
    got = receiver.wait_for(lambda g: len(renewal(g)) >= 3)
    events = renewal(got)
    assert [e.type for e in events] == ["invoice.created", "invoice.finalized", "invoice.paid"]
    assert {e.data.object["id"] for e in events} == {draft["id"]}
    finalized, paid = events[1].data.object, events[2].data.object
    assert (finalized["status"], finalized["total"]) == ("open", 60)
    assert (paid["status"], paid["amount_paid"]) == ("paid", 60)
    assert all(isinstance(e, stripe.Event) for e in events)
    for r in got:
        assert sdk_schema.check(r.event, stripe.Event) == []
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.headers["user-agent"].startswith("Stripe/1.0")
    assert all(r.event["type"].startswith("invoice.") for r in got)


def test_tampered_body_or_wrong_secret_fails_verification(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    we = endpoint(client, receiver.url, "*")
    clock_ready_event(client)
    got = receiver.wait_for(lambda g: len(g) >= 1)[0]
    assert verified(got, we.secret).type == "test_helpers.test_clock.ready"
    header = got.headers["stripe-signature"]
    assert header.startswith("t=") and ",v1=" in header
    tampered = got.body.replace(b'"livemode": false', b'"livemode": true')
    assert tampered != got.body
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered.decode(), header, we.secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(got.body.decode(), header, "whsec_not_the_secret")


def test_non_2xx_is_retried_until_acknowledged_and_listed_per_attempt(
    client: stripe.StripeClient, base_url: str, fast_retries: None
) -> None:
    recv = Receiver(statuses=(500, 500))
    try:
        we = endpoint(client, recv.url, "test_helpers.test_clock.ready")
        clock_ready_event(client)
        got = recv.wait_for(lambda g: len(g) >= 3)
        time.sleep(0.3)  # acknowledged: no fourth attempt
        assert [r.answered for r in recv.got] == [500, 500, 200]
        ids = {r.event["id"] for r in recv.got}
        assert len(ids) == 1
        for r in got:
            assert verified(r, we.secret).id in ids
        rows = wait_deliveries(base_url, lambda rows: len(rows) >= 3)
        assert [(r["attempt"], r["status_code"], r["delivered"]) for r in rows] == [
            (1, 500, False),
            (2, 500, False),
            (3, 200, True),
        ]
        (event_id,) = ids
        assert {(r["event"], r["type"], r["endpoint"], r["url"], r["error"]) for r in rows} == {
            (event_id, "test_helpers.test_clock.ready", we.id, recv.url, None)
        }
        assert all(abs(r["timestamp"] - time.time()) < 30 for r in rows)
        assert client.v1.events.retrieve(event_id).pending_webhooks == 0
    finally:
        recv.close()


def test_unreachable_url_records_errors_and_gives_up_without_breaking_the_api(
    client: stripe.StripeClient, base_url: str, fast_retries: None
) -> None:
    requests.post(
        f"{base_url}/_emulator/webhook_settings", json={"max_attempts": 3}, timeout=5
    ).raise_for_status()
    url = dead_url()
    we = endpoint(client, url, "*")
    clock_ready_event(client)
    rows = wait_deliveries(base_url, lambda rows: len(rows) >= 3)
    time.sleep(0.4)
    rows = deliveries(base_url)
    assert [(r["attempt"], r["status_code"], r["delivered"]) for r in rows] == [
        (1, None, False),
        (2, None, False),
        (3, None, False),
    ]
    assert all("ConnectionError" in r["error"] and r["url"] == url for r in rows)
    assert {r["endpoint"] for r in rows} == {we.id}
    event = client.v1.events.list({"type": "test_helpers.test_clock.ready"}).data[0]
    assert event.pending_webhooks == 1  # never acknowledged
    assert client.v1.webhook_endpoints.retrieve(we.id).status == "enabled"


def test_delivery_is_in_event_order_per_endpoint_even_across_retries(
    client: stripe.StripeClient, fast_retries: None
) -> None:
    recv = Receiver(statuses=(503,))
    try:
        we = endpoint(client, recv.url, "*")
        _, price = metered_price(client)
        cus = client.v1.customers.create({"email": "o@example.com"})
        client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
        recorded = [e.id for e in client.v1.events.list({"limit": 100}).data][::-1]
        got = recv.wait_for(lambda g: len({r.event["id"] for r in g}) >= len(recorded))
        ids: list[str] = []
        for r in got:
            event = verified(r, we.secret)
            if not ids or ids[-1] != event.id:
                ids.append(event.id)
        assert ids == recorded  # the first one twice (503, then 200), then the rest in order
        assert got[0].answered == 503 and got[0].event["id"] == got[1].event["id"]
    finally:
        recv.close()


def test_enabled_events_filter_and_pending_webhooks_count(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    paid_only = endpoint(client, receiver.url, "invoice.paid")
    everything = endpoint(client, dead_url(), "*")
    disabled = endpoint(client, dead_url(), "*")
    client.v1.webhook_endpoints.update(disabled.id, {"disabled": True})
    _, price = metered_price(client)
    cus = client.v1.customers.create({"email": "f@example.com"})
    client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
    got = receiver.wait_for(lambda g: len(g) >= 1)
    time.sleep(0.2)
    assert [verified(r, paid_only.secret).type for r in receiver.got] == ["invoice.paid"]
    assert len(got) == 1
    counts = {e.type: e.pending_webhooks for e in client.v1.events.list({"limit": 100}).data}
    # invoice.paid: acknowledged by the receiver, still pending at the dead endpoint.
    assert counts == {
        "customer.subscription.created": 1,
        "invoice.created": 1,
        "invoice.finalized": 1,
        "invoice.paid": 1,
    }
    assert everything.status == "enabled"


def test_events_before_an_endpoint_exists_or_while_disabled_are_not_sent(
    client: stripe.StripeClient, receiver: Receiver
) -> None:
    clock_ready_event(client)  # before the endpoint: never sent
    we = endpoint(client, receiver.url, "test_helpers.test_clock.ready")
    client.v1.webhook_endpoints.update(we.id, {"disabled": True})
    clock_ready_event(client)  # while disabled: never sent
    client.v1.webhook_endpoints.update(we.id, {"disabled": False})
    last = clock_ready_event(client)
    got = receiver.wait_for(lambda g: len(g) >= 1)
    time.sleep(0.2)
    assert len(receiver.got) == 1
    assert verified(got[0], we.secret).data.object["id"] == last.id
    pending = [e.pending_webhooks for e in client.v1.events.list().data]
    assert pending == [0, 0, 0]


def test_deleted_endpoint_receives_nothing_more(
    client: stripe.StripeClient, base_url: str, fast_retries: None
) -> None:
    recv = Receiver(statuses=(500,) * 1000)
    try:
        we = endpoint(client, recv.url, "*")
        clock_ready_event(client)
        recv.wait_for(lambda g: len(g) >= 2)
        gone = client.v1.webhook_endpoints.delete(we.id)
        assert (gone.id, gone.deleted, gone.object) == (we.id, True, "webhook_endpoint")
        time.sleep(0.3)  # an attempt in flight at deletion may still land
        seen = len(recv.got)
        time.sleep(0.5)
        assert len(recv.got) == seen
        with pytest.raises(stripe.InvalidRequestError) as err:
            client.v1.webhook_endpoints.retrieve(we.id)
        assert err.value.http_status == 404 and err.value.code == "resource_missing"
    finally:
        recv.close()


def test_reset_forgets_endpoints_events_deliveries_and_stops_retries(
    client: stripe.StripeClient, base_url: str, fast_retries: None
) -> None:
    recv = Receiver(statuses=(500,) * 1000)
    try:
        endpoint(client, recv.url, "*")
        clock_ready_event(client)
        recv.wait_for(lambda g: len(g) >= 2)
        requests.post(f"{base_url}/_emulator/reset", timeout=5).raise_for_status()
        time.sleep(0.3)  # an attempt in flight at reset may still land
        seen = len(recv.got)
        time.sleep(0.6)
        assert len(recv.got) == seen
        assert deliveries(base_url) == []
        assert client.v1.webhook_endpoints.list().data == []
        assert client.v1.events.list().data == []
    finally:
        recv.close()


def _sdk_keys(cls: type) -> set[str]:
    return {
        k for k, v in cls.__annotations__.items() if k != "OBJECT_NAME" and "ClassVar" not in str(v)
    }


def test_secret_only_on_create_and_shape_matches_the_sdk(client: stripe.StripeClient) -> None:
    keys = _sdk_keys(stripe.WebhookEndpoint) - {"deleted"}
    we = client.v1.webhook_endpoints.create(
        {
            "url": "http://127.0.0.1:9/hooks",
            "enabled_events": ["invoice.paid", "invoice.created"],
            "description": "billing",
            "metadata": {"team": "billing"},
            "api_version": "2026-10-28.endive",
            "connect": False,
        }
    )
    assert set(we.to_dict()) == keys
    assert sdk_schema.check(we.to_dict(), stripe.WebhookEndpoint) == []
    assert we.secret is not None and we.secret.startswith("whsec_") and len(we.secret) > 20
    assert (we.url, we.enabled_events, we.status, we.description) == (
        "http://127.0.0.1:9/hooks",
        ["invoice.paid", "invoice.created"],
        "enabled",
        "billing",
    )
    assert (we.api_version, we.application, we.livemode, we.metadata.to_dict()) == (
        "2026-10-28.endive",
        None,
        False,
        {"team": "billing"},
    )
    assert we.id.startswith("we_") and abs(we.created - time.time()) < 30
    updated = client.v1.webhook_endpoints.update(
        we.id,
        {
            "url": "http://127.0.0.1:9/v2",
            "enabled_events": ["*"],
            "disabled": True,
            "description": "",
            "metadata": {"team": "", "env": "test"},
        },
    )
    for got in (
        updated,
        client.v1.webhook_endpoints.retrieve(we.id),
        client.v1.webhook_endpoints.list().data[0],
    ):
        assert set(got.to_dict()) == keys - {"secret"}
        assert sdk_schema.check(got.to_dict(), stripe.WebhookEndpoint) == []
        assert (got.url, got.enabled_events, got.status, got.description) == (
            "http://127.0.0.1:9/v2",
            ["*"],
            "disabled",
            None,
        )
        assert got.metadata.to_dict() == {"env": "test"}
    plain = client.v1.webhook_endpoints.create(
        {"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]}
    )
    assert (plain.api_version, plain.description, plain.metadata.to_dict()) == (None, None, {})
    page = client.v1.webhook_endpoints.list({"limit": 1})
    assert ([w.id for w in page.data], page.has_more, page.url) == (
        [plain.id],
        True,
        "/v1/webhook_endpoints",
    )
    assert [w.id for w in client.v1.webhook_endpoints.list({"starting_after": plain.id})] == [we.id]


@pytest.mark.parametrize(
    ("params", "status", "param", "code"),
    [
        ({"enabled_events": ["*"]}, 400, "url", "parameter_missing"),
        ({"url": "http://127.0.0.1:9/h"}, 400, "enabled_events", "parameter_missing"),
        (
            {"url": "http://127.0.0.1:9/h", "enabled_events": ["invoice.paid", "invoice.nope"]},
            400,
            "enabled_events[1]",
            None,
        ),
        ({"url": "not a url", "enabled_events": ["*"]}, 400, "url", "url_invalid"),
        ({"url": "ftp://example.com/h", "enabled_events": ["*"]}, 400, "url", "url_invalid"),
        (
            {"url": "http://127.0.0.1:9/h", "enabled_events": ["*"], "connect": True},
            400,
            "connect",
            "emulator_unsupported",
        ),
        (
            {
                "url": "http://127.0.0.1:9/h",
                "enabled_events": ["*"],
                "api_version": "2025-03-31.basil",
            },
            400,
            "api_version",
            "emulator_unsupported",
        ),
        (
            {"url": "http://127.0.0.1:9/h", "enabled_events": ["*"], "api_version": "v1"},
            400,
            "api_version",
            None,
        ),
        (
            {"url": "http://127.0.0.1:9/h", "enabled_events": ["*"], "secret": "whsec_x"},
            400,
            "secret",
            "parameter_unknown",
        ),
    ],
)
def test_bad_endpoint_params_are_4xx_naming_the_param(
    client: stripe.StripeClient, params: dict[str, Any], status: int, param: str, code: str | None
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.webhook_endpoints.create(params)  # type: ignore[arg-type]
    assert (err.value.http_status, err.value.param, err.value.code) == (status, param, code)
    assert client.v1.webhook_endpoints.list().data == []


def test_bad_update_and_unknown_endpoint(client: stripe.StripeClient) -> None:
    we = endpoint(client, "http://127.0.0.1:9/h", "*")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.webhook_endpoints.update(we.id, {"enabled_events": ["nope.nope"]})  # type: ignore[arg-type]
    assert (err.value.http_status, err.value.param) == (400, "enabled_events[0]")
    with pytest.raises(stripe.InvalidRequestError) as err:
        client.v1.webhook_endpoints.update(we.id, {"url": "mailto:x@example.com"})
    assert (err.value.param, err.value.code) == ("url", "url_invalid")
    assert client.v1.webhook_endpoints.retrieve(we.id).enabled_events == ["*"]
    for call in (
        lambda: client.v1.webhook_endpoints.retrieve("we_missing"),
        lambda: client.v1.webhook_endpoints.update("we_missing", {"description": "x"}),
        lambda: client.v1.webhook_endpoints.delete("we_missing"),
    ):
        with pytest.raises(stripe.InvalidRequestError) as err:
            call()
        assert (err.value.http_status, err.value.code) == (404, "resource_missing")
        assert "No such webhook endpoint: 'we_missing'" in str(err.value.user_message)


def test_control_shortcut_registers_an_endpoint_with_its_secret(
    client: stripe.StripeClient, base_url: str, receiver: Receiver
) -> None:
    resp = requests.post(
        f"{base_url}/_emulator/webhook_endpoints",
        json={"url": receiver.url, "enabled_events": ["*"], "connect": False},
        timeout=5,
    )
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "webhook_endpoint" and body["secret"].startswith("whsec_")
    assert [w.id for w in client.v1.webhook_endpoints.list().data] == [body["id"]]
    clock_ready_event(client)
    got = receiver.wait_for(lambda g: len(g) >= 1)
    assert verified(got[0], body["secret"]).type == "test_helpers.test_clock.ready"


def test_queued_delivery_survives_a_restart_on_the_same_state_dir(tmp_path: Path) -> None:
    recv = Receiver(statuses=(500,) * 1000)
    try:
        app = create_app(advance_delay_s=0.02, state_dir=tmp_path)
        try:
            with serve_asgi(app) as url:
                client = sdk_client(url)
                we = endpoint(client, recv.url, "test_helpers.test_clock.ready")
                clock_ready_event(client)
                recv.wait_for(lambda g: len(g) >= 1)
                wait_deliveries(url, lambda rows: len(rows) >= 1)
        finally:
            app.close()
        with recv.cond:
            recv.statuses = []  # the receiver is fixed while the emulator is down
        seen = len(recv.got)
        app = create_app(advance_delay_s=0.02, state_dir=tmp_path)
        try:
            with serve_asgi(app) as url:
                requests.get(f"{url}/_emulator/health", timeout=5)  # any request resumes
                got = recv.wait_for(lambda g: len(g) > seen and g[-1].answered == 200)
                assert verified(got[-1], we.secret).type == "test_helpers.test_clock.ready"
                rows = wait_deliveries(url, lambda rows: rows[-1]["delivered"])
                assert [r["status_code"] for r in rows] == [500] * seen + [200]
                assert [r["attempt"] for r in rows] == list(range(1, seen + 2))
                event = sdk_client(url).v1.events.retrieve(rows[0]["event"])
                assert event.pending_webhooks == 0
        finally:
            app.close()
    finally:
        recv.close()
