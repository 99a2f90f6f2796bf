"""The shared Stripe test world for the writer, reconciler and workers tests.

`StripeWorld` builds what those tests need on the emulator: a sum meter, a metered
price, customers on test clocks (one clock, or one per three customers: a clock holds at
most three) with subscriptions, the `price_mappings` row and the customers' bindings to
the tenant;
`ingest` sends usage through the real ingest API.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
import requests
import stripe

from stripemeter.api.app import create_app
from stripemeter.config import Settings, load_settings
from stripemeter.stripe.gateway import RetryPolicy, StripeGateway
from tests.support.emulator import TEST_KEY, sdk_client
from tests.support.servers import serve_asgi

FAST_RETRY = RetryPolicy(attempts=12, base_delay_s=0.002, max_delay_s=0.02)
HOUR = 3600


def settings_for(emulator_url: str, db_url: str, **extra: Any) -> Settings:
    """Settings pointing the service at this emulator and database, auth bypassed."""
    return load_settings(
        DATABASE_URL=db_url,
        STRIPE_API_BASE=emulator_url,
        STRIPE_SECRET_KEY=TEST_KEY,
        BYPASS_AUTH=True,
        **extra,
    )


def fault(emulator_url: str, **rule: Any) -> None:
    """Inject a fault rule into the emulator."""
    answer = requests.post(f"{emulator_url}/_emulator/faults", json=rule, timeout=10)
    assert answer.status_code == 200, answer.text


def emulator_state(emulator_url: str) -> dict[str, Any]:
    """The emulator's JSON state dump."""
    answer = requests.get(f"{emulator_url}/_emulator/state", timeout=10)
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def meter_events_in_stripe(emulator_url: str) -> list[dict[str, Any]]:
    """Every meter event the emulator holds."""
    events = emulator_state(emulator_url)["meter_events"]
    return list(events.values()) if isinstance(events, dict) else list(events)


@dataclass
class StripeWorld:
    """Stripe objects on the emulator plus the mapping row that points at them."""

    url: str
    client: stripe.StripeClient
    tenant_id: str
    metric: str
    meter_id: str
    event_name: str
    price_id: str
    clock_id: str  # the first clock; every clock of the world shows the same time
    customers: list[str] = field(default_factory=list)
    clocks: list[str] = field(default_factory=list)
    items: dict[str, str] = field(default_factory=dict)
    period_start: int = 0
    period_end: int = 0

    def gateway(self, retry: RetryPolicy = FAST_RETRY) -> StripeGateway:
        """A gateway on this world's emulator with fast retries."""
        return StripeGateway(self.client, retry=retry, clock_cache_s=0.0)

    def stripe_total(self, customer: str, start: int, end: int) -> Decimal:
        """Stripe's meter summary for a customer over minute-aligned [start, end)."""
        return self.gateway().meter_total(self.meter_id, customer, start, end)

    def frozen_time(self) -> int:
        """The clock's frozen time now."""
        return int(self.client.v1.test_helpers.test_clocks.retrieve(self.clock_id).frozen_time)

    def advance(self, to: int, timeout_s: float = 30.0) -> None:
        """Advance every clock of the world and wait until they are ready."""
        clocks = self.clocks or [self.clock_id]
        for clock in clocks:
            self.client.v1.test_helpers.test_clocks.advance(clock, {"frozen_time": to})
        deadline = time.monotonic() + timeout_s
        waiting = list(clocks)
        while time.monotonic() < deadline:
            waiting = [
                c
                for c in waiting
                if self.client.v1.test_helpers.test_clocks.retrieve(c).status != "ready"
            ]
            if not waiting:
                return
            time.sleep(0.05)
        raise TimeoutError(f"clocks {waiting} did not become ready")


def build_world(
    emulator_url: str,
    db_url: str,
    *,
    customers: int = 3,
    clock_start_ago_s: int = 50 * HOUR,
    frozen_ago_s: int = 300,
    formula: str = "sum",
    aggregation: str = "sum",
    with_item_id: bool = False,
    customers_per_clock: int | None = None,
) -> StripeWorld:
    """Meter, price, clock (created `clock_start_ago_s` ago, advanced to `frozen_ago_s` ago),
    customers with a card and a subscription each, and the active mapping row.

    With `customers_per_clock`, a new clock (same times) every that many customers, so a
    world may hold more customers than the three one clock takes.
    """
    client = sdk_client(emulator_url)
    now = int(time.time())
    tag = uuid.uuid4().hex[:8]
    event_name = f"api_calls_{tag}"
    meter = client.v1.billing.meters.create(
        {
            "display_name": "API calls",
            "event_name": event_name,
            "default_aggregation": {"formula": formula},  # type: ignore[typeddict-item]
        }
    )
    product = client.v1.products.create({"name": f"API {tag}"})
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 5,
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    clock = client.v1.test_helpers.test_clocks.create({"frozen_time": now - clock_start_ago_s})
    world = StripeWorld(
        url=emulator_url,
        client=client,
        tenant_id=str(uuid.uuid4()),
        metric="api_calls",
        meter_id=meter.id,
        event_name=event_name,
        price_id=price.id,
        clock_id=clock.id,
    )
    world.clocks.append(clock.id)
    for n in range(customers):
        if customers_per_clock and n and n % customers_per_clock == 0:
            more = client.v1.test_helpers.test_clocks.create(
                {"frozen_time": now - clock_start_ago_s}
            )
            world.clocks.append(more.id)
        cus = client.v1.customers.create(
            {"test_clock": world.clocks[-1], "email": f"c{n}@example.com"}
        )
        pm = client.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
        client.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
        sub = client.v1.subscriptions.create({"customer": cus.id, "items": [{"price": price.id}]})
        item = sub.items.data[0]
        world.customers.append(cus.id)
        world.items[cus.id] = item.id
        world.period_start = int(item.current_period_start)
        world.period_end = int(item.current_period_end)
    world.advance(now - frozen_ago_s)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account, price_id,"
            " subscription_item_id, currency, active) VALUES (%s, %s, %s, 'default', %s, %s,"
            " 'usd', true)",
            (
                world.tenant_id,
                world.metric,
                aggregation,
                price.id,
                world.items[world.customers[0]] if with_item_id else None,
            ),
        )
        for customer in world.customers:  # the operator binds the tenant's customers
            conn.execute(
                "INSERT INTO customer_bindings (tenant_id, customer_ref, stripe_customer_id)"
                " VALUES (%s, %s, %s)",
                (world.tenant_id, customer, customer),
            )
    return world


@contextmanager
def running_api(settings: Settings, db_url: str) -> Iterator[str]:
    """The real API (create_app + the writer/reconciliation routers) on a free port."""
    from stripemeter.api import reconciliation, writer_status

    app = create_app(settings, db_url=db_url)
    if not any(getattr(r, "path", "") == "/v1/writer/status" for r in app.routes):
        app.include_router(writer_status.router)
        app.include_router(reconciliation.router)
        writer_status.install(app)
    with serve_asgi(app) as base:
        yield base


def ingest(api_url: str, events: list[dict[str, Any]], batch: int = 500) -> tuple[int, int]:
    """Send events through `POST /v1/events/ingest`; return (accepted, duplicates)."""
    accepted = duplicates = 0
    with requests.Session() as http:
        for i in range(0, len(events), batch):
            answer = http.post(
                f"{api_url}/v1/events/ingest", json={"events": events[i : i + batch]}, timeout=60
            )
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert not body["errors"], body["errors"][:3]
            accepted += body["accepted"]
            duplicates += body["duplicates"]
    return accepted, duplicates


def usage_event(
    world: StripeWorld, customer: str, ts: int, quantity: int, key: str
) -> dict[str, Any]:
    """One ingest event for the world's tenant and metric."""
    return {
        "tenantId": str(world.tenant_id),
        "metric": world.metric,
        "customerRef": customer,
        "quantity": quantity,
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
        "idempotencyKey": key,
    }
