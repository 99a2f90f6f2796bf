"""Every endpoint the emulator serves, every response checked against the SDK's annotations.

One flow drives each (method, pattern) of `Router.routes()` over real HTTP and checks each
JSON response, recursively (expanded objects and list envelopes included), with
`sdk_schema.check`. The test fails when a route is added without being exercised here.
Routes that other work may add (webhook endpoints, events) are driven when present.
"""

from __future__ import annotations

import re
import time
from typing import Any

import requests
import stripe
from stripe import ListObject, WebhookEndpoint
from stripe._object_classes import get_object_class
from stripe.billing import Meter
from stripe.test_helpers import TestClock as Clock
from stripe.v2.billing import MeterEventSession

from stripe_emulator.app import API_VERSION, create_app
from tests.stripe_emulator.sdk_schema import Tally, check
from tests.support.emulator import TEST_KEY

DAY = 86400


def _form(params: dict[str, Any]) -> list[tuple[str, str]]:
    """Stripe's form encoding (`a[b]=c`, `a[0]=c`), as the SDK sends it."""
    out: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}[{key}]" if prefix else key, inner)
        elif isinstance(value, list):
            for n, inner in enumerate(value):
                walk(f"{prefix}[{n}]", inner)
        elif isinstance(value, bool):
            out.append((prefix, "true" if value else "false"))
        else:
            out.append((prefix, str(value)))

    walk("", params)
    return out


class Api:
    """HTTP against the emulator: records the route of each call and checks each response."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.routes = [r for r in create_app().router.routes() if not r[1].startswith("/_")]
        self.exercised: set[tuple[str, str]] = set()
        self.tally = Tally()
        self.problems: list[str] = []
        self.checked_types: set[str] = set()

    def has(self, method: str, pattern: str) -> bool:
        return (method, pattern) in self.routes

    def _route(self, method: str, path: str) -> tuple[str, str]:
        for meth, pattern in self.routes:
            regex = "^" + re.sub(r"\{[a-z_]+\}", "[^/]+", pattern) + "$"
            if meth == method and re.match(regex, path):
                return meth, pattern
        raise AssertionError(f"no route serves {method} {path}")

    def call(
        self, method: str, path: str, params: dict[str, Any] | None = None, *, status: int = 200
    ) -> dict[str, Any]:
        self.exercised.add(self._route(method, path))
        form = _form(params or {})
        resp = requests.request(
            method,
            self.base_url + path,
            params=form if method != "POST" else None,
            data=form if method == "POST" else None,
            headers={"Authorization": f"Bearer {TEST_KEY}", "Stripe-Version": API_VERSION},
            timeout=10,
        )
        assert resp.status_code == status, (method, path, resp.text)
        body: dict[str, Any] = resp.json()
        return body

    def post_json(
        self, path: str, body: dict[str, Any], *, bearer: str = TEST_KEY
    ) -> dict[str, Any]:
        """An API v2 POST: a JSON body, as the SDK sends to /v2."""
        self.exercised.add(self._route("POST", path))
        resp = requests.post(
            self.base_url + path,
            json=body,
            headers={"Authorization": f"Bearer {bearer}", "Stripe-Version": API_VERSION},
            timeout=10,
        )
        assert resp.status_code == 200, (path, resp.text)
        answer: dict[str, Any] = resp.json()
        return answer

    def expect(self, body: dict[str, Any], cls: Any, label: str) -> dict[str, Any]:
        """Check `body` against SDK class `cls`, collecting problems under `label`."""
        name = getattr(cls, "__name__", str(cls))
        self.checked_types.add(name)
        self.problems += [f"[{label}] {p}" for p in check(body, cls, tally=self.tally)]
        return body

    def get(self, path: str, cls: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.expect(self.call("GET", path, params), cls, f"GET {path}")
        if body.get("object") == "list":
            assert body["url"] == path  # Stripe's list url: the path, without the query
        return body

    def post(self, path: str, cls: Any, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.expect(self.call("POST", path, params), cls, f"POST {path}")

    def delete(self, path: str, cls: Any) -> dict[str, Any]:
        return self.expect(self.call("DELETE", path), cls, f"DELETE {path}")

    def wait_ready(self, clock_id: str) -> None:
        """Poll until ready; only the ready clock is checked, so the totals are stable."""
        path = f"/v1/test_helpers/test_clocks/{clock_id}"
        end = time.monotonic() + 10
        while time.monotonic() < end:
            clock = self.call("GET", path)
            if clock["status"] == "ready":
                self.expect(clock, Clock, f"GET {path}")
                return
            time.sleep(0.01)
        raise TimeoutError(clock_id)


def _class_of(obj: dict[str, Any]) -> Any:
    cls = get_object_class("V1", obj["object"])
    assert cls is not None, obj["object"]
    return cls


def test_every_endpoint_returns_objects_shaped_as_the_sdk_annotates(base_url: str) -> None:
    api = Api(base_url)
    now = int(time.time())
    t0 = now - 7200

    clock = api.post("/v1/test_helpers/test_clocks", Clock, {"frozen_time": t0, "name": "c"})
    api.get("/v1/test_helpers/test_clocks", ListObject[Clock])
    spare = api.post("/v1/test_helpers/test_clocks", Clock, {"frozen_time": t0})

    meter = api.post(
        "/v1/billing/meters",
        Meter,
        {
            "display_name": "API calls",
            "event_name": "api_calls",
            "default_aggregation": {"formula": "sum"},
        },
    )
    mid = meter["id"]
    api.get("/v1/billing/meters", ListObject[Meter])
    api.get(f"/v1/billing/meters/{mid}", Meter)
    api.post(f"/v1/billing/meters/{mid}", Meter, {"display_name": "Calls"})
    api.post(f"/v1/billing/meters/{mid}/deactivate", Meter)
    api.post(f"/v1/billing/meters/{mid}/reactivate", Meter)

    product = api.post("/v1/products", stripe.Product, {"name": "API", "metadata": {"k": "v"}})
    api.get("/v1/products", ListObject[stripe.Product])
    api.get(f"/v1/products/{product['id']}", stripe.Product)
    api.post(f"/v1/products/{product['id']}", stripe.Product, {"description": "calls"})
    metered = api.post(
        "/v1/prices",
        stripe.Price,
        {
            "currency": "usd",
            "product": product["id"],
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": mid},
            "expand": ["product"],
        },
    )
    seat = api.post(
        "/v1/prices",
        stripe.Price,
        {
            "currency": "usd",
            "product": product["id"],
            "unit_amount": 700,
            "recurring": {"interval": "month"},
        },
    )
    api.get("/v1/prices", ListObject[stripe.Price])
    api.get(f"/v1/prices/{seat['id']}", stripe.Price)
    api.post(f"/v1/prices/{seat['id']}", stripe.Price, {"nickname": "seat"})

    cus = api.post(
        "/v1/customers",
        stripe.Customer,
        {"email": "demo@example.com", "test_clock": clock["id"], "expand": ["test_clock"]},
    )
    cid = cus["id"]
    pm = api.post(
        "/v1/payment_methods/pm_card_visa/attach", stripe.PaymentMethod, {"customer": cid}
    )
    api.post(
        f"/v1/customers/{cid}",
        stripe.Customer,
        {"invoice_settings": {"default_payment_method": pm["id"]}, "name": "Demo"},
    )
    api.get("/v1/customers", ListObject[stripe.Customer])
    api.get(f"/v1/customers/{cid}", stripe.Customer)
    api.get(f"/v1/customers/{cid}/payment_methods", ListObject[stripe.PaymentMethod])
    api.get("/v1/payment_methods", ListObject[stripe.PaymentMethod], {"customer": cid})
    api.get(f"/v1/payment_methods/{pm['id']}", stripe.PaymentMethod)
    spare_pm = api.post(
        "/v1/payment_methods/pm_card_mastercard/attach", stripe.PaymentMethod, {"customer": cid}
    )
    api.post(f"/v1/payment_methods/{spare_pm['id']}/detach", stripe.PaymentMethod)

    sub = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {
            "customer": cid,
            "items": [{"price": metered["id"]}],
            "expand": ["latest_invoice", "customer"],
        },
    )
    invoiced = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {
            "customer": cid,
            "items": [{"price": seat["id"], "quantity": 2}],
            "collection_method": "send_invoice",
            "days_until_due": 7,
        },
    )
    oob = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {
            "customer": cid,
            "items": [{"price": seat["id"]}],
            "collection_method": "send_invoice",
            "days_until_due": 3,
        },
    )
    draft_id = invoiced["latest_invoice"]
    api.get(
        f"/v1/invoices/{draft_id}",
        stripe.Invoice,
        {"expand": ["customer", "parent.subscription_details.subscription"]},
    )
    api.post(f"/v1/invoices/{draft_id}/finalize", stripe.Invoice, {"auto_advance": False})
    api.post(f"/v1/invoices/{draft_id}/mark_uncollectible", stripe.Invoice)
    voided = api.post(f"/v1/invoices/{draft_id}/void", stripe.Invoice)
    assert voided["status"] == "void"
    paid = api.post(
        f"/v1/invoices/{oob['latest_invoice']}/pay", stripe.Invoice, {"paid_out_of_band": True}
    )
    assert paid["status"] == "paid"

    api.get("/v1/subscriptions", ListObject[stripe.Subscription], {"customer": cid})
    api.get(
        f"/v1/subscriptions/{sub['id']}",
        stripe.Subscription,
        {"expand": ["items.data.price.product", "latest_invoice.lines"]},
    )
    api.post(f"/v1/subscriptions/{invoiced['id']}", stripe.Subscription, {"metadata": {"a": "b"}})
    item = sub["items"]["data"][0]
    assert sub["items"]["url"] == f"/v1/subscription_items?subscription={sub['id']}"
    assert (
        sub["latest_invoice"]["lines"]["url"] == f"/v1/invoices/{sub['latest_invoice']['id']}/lines"
    )
    api.get(
        "/v1/subscription_items", ListObject[stripe.SubscriptionItem], {"subscription": sub["id"]}
    )
    api.get(f"/v1/subscription_items/{item['id']}", stripe.SubscriptionItem)
    legacy = api.call(
        "POST", f"/v1/subscription_items/{item['id']}/usage_records", {"quantity": 1}, status=400
    )
    assert legacy["error"]["type"] == "invalid_request_error"

    api.post(
        "/v1/test_helpers/test_clocks/{}/advance".format(clock["id"]),
        Clock,
        {"frozen_time": now - 300},
    )
    api.wait_ready(clock["id"])
    for n, ts in enumerate([now - 5400, now - 3600, now - 600]):
        api.post(
            "/v1/billing/meter_events",
            stripe.billing.MeterEvent,
            {
                "event_name": "api_calls",
                "identifier": f"e{n}",
                "timestamp": ts,
                "payload": {"stripe_customer_id": cid, "value": "10"},
            },
        )
    session = api.expect(
        api.post_json("/v2/billing/meter_event_session", {}),
        MeterEventSession,
        "POST /v2/billing/meter_event_session",
    )
    streamed = api.post_json(
        "/v2/billing/meter_event_stream",
        {  # e0 again: the stream drops it (the identifier is known), nothing changes
            "events": [
                {
                    "event_name": "api_calls",
                    "identifier": "e0",
                    "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600)),
                    "payload": {"stripe_customer_id": cid, "value": "10"},
                }
            ]
        },
        bearer=session["authentication_token"],
    )
    assert streamed == {}  # the SDK's `create` returns None: the stream answers no fields
    api.post(
        "/v1/billing/meter_event_adjustments",
        stripe.billing.MeterEventAdjustment,
        {"event_name": "api_calls", "type": "cancel", "cancel": {"identifier": "e2"}},
    )
    window = {
        "customer": cid,
        "start_time": t0 // 3600 * 3600,
        "end_time": (now // 3600 + 1) * 3600,
    }
    api.get(
        f"/v1/billing/meters/{mid}/event_summaries",
        ListObject[stripe.billing.MeterEventSummary],
        window,
    )
    api.get(
        f"/v1/billing/meters/{mid}/event_summaries",
        ListObject[stripe.billing.MeterEventSummary],
        {**window, "value_grouping_window": "hour"},
    )

    preview = api.post(
        "/v1/invoices/create_preview", stripe.Invoice, {"customer": cid, "subscription": sub["id"]}
    )
    assert preview["lines"]["data"][0]["quantity"] == 20

    end = item["current_period_end"]
    api.post(
        "/v1/test_helpers/test_clocks/{}/advance".format(clock["id"]),
        Clock,
        {"frozen_time": end + 2 * 3600},
    )
    api.wait_ready(clock["id"])
    invoices = api.get("/v1/invoices", ListObject[stripe.Invoice], {"customer": cid, "limit": 100})
    cycle = [i for i in invoices["data"] if i["billing_reason"] == "subscription_cycle"]
    assert [(i["status"], i["amount_paid"]) for i in cycle if i["amount_due"] == 100] == [
        ("paid", 100)
    ]
    for inv in invoices["data"]:
        api.get(f"/v1/invoices/{inv['id']}/lines", ListObject[stripe.InvoiceLineItem])
    usage_invoice = next(i for i in cycle if i["amount_due"] == 100)
    _invoice_items_and_credit_notes(api, cid, sub["id"], clock["id"], usage_invoice)
    api.get("/v1/invoices", ListObject[stripe.Invoice], {"expand": ["data.lines", "data.customer"]})

    api.delete(f"/v1/subscriptions/{oob['id']}", stripe.Subscription)
    _trials_and_dunning(api, metered["id"], seat["id"], now)
    _one_offs_and_endings(api, product["id"], metered["id"], now)
    _custom_meter(api, cid, now)

    if api.has("POST", "/v1/webhook_endpoints"):
        _webhook_endpoints(api)

    events = (
        api.get("/v1/events", ListObject[stripe.Event], {"limit": 100})
        if api.has("GET", "/v1/events")
        else None
    )
    if events is not None:
        for event in events["data"]:
            api.expect(
                event["data"]["object"],
                _class_of(event["data"]["object"]),
                f"event {event['type']}",
            )
        if events["data"] and api.has("GET", "/v1/events/{id}"):
            api.get(f"/v1/events/{events['data'][0]['id']}", stripe.Event)

    if api.has("DELETE", "/v1/products/{id}"):
        unused = api.post("/v1/products", stripe.Product, {"name": "Unused"})
        dropped = api.delete(f"/v1/products/{unused['id']}", stripe.Product)
        assert dropped["deleted"] is True
    other = api.post("/v1/customers", stripe.Customer, {"name": "Gone"})
    gone = api.delete(f"/v1/customers/{other['id']}", stripe.Customer)
    assert gone["deleted"] is True
    api.delete(f"/v1/test_helpers/test_clocks/{spare['id']}", Clock)
    api.delete("/v1/test_helpers/test_clocks/{}".format(clock["id"]), Clock)

    assert api.exercised == set(api.routes), sorted(set(api.routes) - api.exercised)
    print(f"\nconformance: {api.tally.objects} objects, {api.tally.fields} fields checked")
    assert api.tally.objects > 0 and api.tally.fields > 0
    assert api.problems == []


def _invoice_items_and_credit_notes(
    api: Api, cid: str, sub_id: str, clock_id: str, paid: dict[str, Any]
) -> None:
    """A pending invoice item billed on the next invoice; credit notes on a paid invoice."""
    item = api.post(
        "/v1/invoiceitems",
        stripe.InvoiceItem,
        {
            "customer": cid,
            "subscription": sub_id,
            "currency": "usd",
            "quantity": 3,
            "unit_amount_decimal": "5",
            "description": "3 calls after close",
            "period": {"start": paid["period_start"], "end": paid["period_end"]},
            "metadata": {"k": "v"},
        },
    )
    loose = api.post(
        "/v1/invoiceitems",
        stripe.InvoiceItem,
        {"customer": cid, "amount": 40, "currency": "usd", "expand": ["customer"]},
    )
    assert (item["amount"], loose["parent"]) == (15, None)
    api.get("/v1/invoiceitems", ListObject[stripe.InvoiceItem], {"customer": cid, "pending": True})
    line = next(x for x in paid["lines"]["data"] if x["quantity"] == 20)
    note = api.post(
        "/v1/credit_notes",
        stripe.CreditNote,
        {
            "invoice": paid["id"],
            "lines": [
                {"type": "invoice_line_item", "invoice_line_item": line["id"], "quantity": 2}
            ],
            "credit_amount": 10,
            "reason": "duplicate",
            "expand": ["invoice"],
        },
    )
    custom = api.post(
        "/v1/credit_notes",
        stripe.CreditNote,
        {
            "invoice": paid["id"],
            "lines": [{"type": "custom_line_item", "description": "goodwill", "unit_amount": 3}],
            "out_of_band_amount": 3,
        },
    )
    assert (note["amount"], custom["amount"]) == (10, 3)
    api.get("/v1/credit_notes", ListObject[stripe.CreditNote], {"invoice": paid["id"]})
    api.get(f"/v1/credit_notes/{note['id']}", stripe.CreditNote)
    api.get(f"/v1/credit_notes/{note['id']}/lines", ListObject[stripe.CreditNoteLineItem])
    credited = api.get(f"/v1/invoices/{paid['id']}", stripe.Invoice)
    assert credited["post_payment_credit_notes_amount"] == 13
    end = api.call("GET", f"/v1/subscriptions/{sub_id}")["items"]["data"][0]["current_period_end"]
    api.post(f"/v1/test_helpers/test_clocks/{clock_id}/advance", Clock, {"frozen_time": end + 7200})
    api.wait_ready(clock_id)
    billed = api.get(f"/v1/invoiceitems/{item['id']}", stripe.InvoiceItem)
    nxt = api.get(f"/v1/invoices/{billed['invoice']}", stripe.Invoice)
    assert nxt["total"] == 15 + 40
    assert nxt["starting_balance"] == -10 and nxt["amount_due"] == 45


def _trials_and_dunning(api: Api, metered: str, seat: str, now: int) -> None:
    """More shapes through the same routes: a trial stub period, a future anchor,
    cancel_at_period_end, and a declined renewal (open invoice, past_due subscription)."""
    t0 = now - 3 * 3600
    clock = api.post("/v1/test_helpers/test_clocks", Clock, {"frozen_time": t0})
    cus = api.post("/v1/customers", stripe.Customer, {"test_clock": clock["id"]})
    pm = api.post(
        "/v1/payment_methods/pm_card_chargeCustomerFail/attach",
        stripe.PaymentMethod,
        {"customer": cus["id"]},
    )
    api.post(
        f"/v1/customers/{cus['id']}",
        stripe.Customer,
        {"invoice_settings": {"default_payment_method": pm["id"]}},
    )
    trial = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {"customer": cus["id"], "items": [{"price": seat}], "trial_period_days": 3},
    )
    assert trial["status"] == "trialing"
    anchored = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {
            "customer": cus["id"],
            "items": [{"price": metered}, {"price": seat}],
            "billing_cycle_anchor": t0 + 5 * DAY,
            "proration_behavior": "none",
        },
    )
    api.post(
        f"/v1/subscriptions/{trial['id']}",
        stripe.Subscription,
        {"cancel_at_period_end": True, "expand": ["latest_invoice"]},
    )
    api.post(
        f"/v1/test_helpers/test_clocks/{clock['id']}/advance",
        Clock,
        {"frozen_time": t0 + 5 * DAY + 7200},
    )
    api.wait_ready(clock["id"])
    late = api.get(f"/v1/subscriptions/{anchored['id']}", stripe.Subscription)
    assert late["status"] == "past_due"
    ended = api.get(f"/v1/subscriptions/{trial['id']}", stripe.Subscription)
    assert ended["status"] == "canceled"
    invoices = api.get(
        "/v1/invoices", ListObject[stripe.Invoice], {"customer": cus["id"], "status": "open"}
    )
    assert [i["attempted"] for i in invoices["data"]] == [True]


def _one_offs_and_endings(api: Api, product: str, metered: str, now: int) -> None:
    """Invoice-item lines, inline price_data, backdating, cancel_at and cancel-now invoices."""
    setup = api.post(
        "/v1/prices", stripe.Price, {"currency": "usd", "product": product, "unit_amount": 900}
    )
    cus = api.post("/v1/customers", stripe.Customer, {"email": "one@example.com"})
    pm = api.post(
        "/v1/payment_methods/pm_card_amex/attach", stripe.PaymentMethod, {"customer": cus["id"]}
    )
    sub = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {
            "customer": cus["id"],
            "default_payment_method": pm["id"],
            "items": [
                {"price": metered, "metadata": {"tier": "usage"}},
                {
                    "price_data": {
                        "currency": "usd",
                        "product": product,
                        "recurring": {"interval": "month"},
                        "unit_amount": 1500,
                    },
                    "quantity": 3,
                },
            ],
            "add_invoice_items": [{"price": setup["id"], "quantity": 2}],
            "expand": ["latest_invoice"],
        },
    )
    lines = sub["latest_invoice"]["lines"]["data"]
    assert {line["parent"]["type"] for line in lines} == {
        "invoice_item_details",
        "subscription_item_details",
    }
    ending = api.post(
        "/v1/subscriptions",
        stripe.Subscription,
        {
            "customer": cus["id"],
            "items": [{"price": metered}],
            "backdate_start_date": now - 3 * DAY,
            "cancel_at": now + 3 * DAY,
        },
    )
    assert ending["cancel_at"] == now + 3 * DAY
    api.post(
        "/v1/billing/meter_events",
        stripe.billing.MeterEvent,
        {
            "event_name": "api_calls",
            "timestamp": now - 60,
            "payload": {"stripe_customer_id": cus["id"], "value": "4"},
        },
    )
    canceled = api.call(
        "DELETE", f"/v1/subscriptions/{sub['id']}", {"invoice_now": True, "prorate": False}
    )
    api.expect(canceled, stripe.Subscription, "DELETE /v1/subscriptions/{id} invoice_now")
    assert canceled["status"] == "canceled"
    api.get("/v1/invoices", ListObject[stripe.Invoice], {"customer": cus["id"], "limit": 100})


def _custom_meter(api: Api, cid: str, now: int) -> None:
    """A count meter with its own payload keys and an hourly event window."""
    meter = api.post(
        "/v1/billing/meters",
        Meter,
        {
            "display_name": "Jobs",
            "event_name": "jobs",
            "default_aggregation": {"formula": "count"},
            "customer_mapping": {"event_payload_key": "account", "type": "by_id"},
            "value_settings": {"event_payload_key": "n"},
            "event_time_window": "hour",
        },
    )
    assert meter["event_time_window"] == "hour"
    event = api.post(
        "/v1/billing/meter_events",
        stripe.billing.MeterEvent,
        {"event_name": "jobs", "timestamp": now - 120, "payload": {"account": cid, "n": "2"}},
    )
    assert event["identifier"]
    hour = now // 3600 * 3600
    summaries = api.get(
        f"/v1/billing/meters/{meter['id']}/event_summaries",
        ListObject[stripe.billing.MeterEventSummary],
        {"customer": cid, "start_time": hour - 3600, "end_time": hour + 3600},
    )
    assert sum(x["aggregated_value"] for x in summaries["data"]) == 1


def _webhook_endpoints(api: Api) -> None:
    """CRUD of webhook endpoints (routes added by other work; driven only when served)."""
    made = api.post(
        "/v1/webhook_endpoints",
        WebhookEndpoint,
        {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]},
    )
    wid = made["id"]
    if api.has("GET", "/v1/webhook_endpoints"):
        api.get("/v1/webhook_endpoints", ListObject[WebhookEndpoint])
    if api.has("GET", "/v1/webhook_endpoints/{id}"):
        api.get(f"/v1/webhook_endpoints/{wid}", WebhookEndpoint)
    if api.has("POST", "/v1/webhook_endpoints/{id}"):
        api.post(f"/v1/webhook_endpoints/{wid}", WebhookEndpoint, {"description": "hook"})
    if api.has("DELETE", "/v1/webhook_endpoints/{id}"):
        api.delete(f"/v1/webhook_endpoints/{wid}", WebhookEndpoint)
