"""A demo world for step tests: two customers on one clock, the API serving them, and the
demo state the steps read (`DEMO_STATE_DIR`), so a real step runs against it in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests

from steps._state import DemoState, save_state, write_json_atomic
from stripemeter.config import Settings
from stripemeter.writer.passes import drain
from tests.steps.conftest import StepRunner
from tests.support.emulator import TEST_KEY
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    ingest,
    running_api,
    settings_for,
    usage_event,
)


@dataclass
class Demo:
    """A world with the API serving it and the demo state pointing at it."""

    world: StripeWorld
    api: str
    settings: Settings
    db_url: str
    state_dir: Path
    frozen: int  # the clock's time when the first usage was sent

    @property
    def first(self) -> str:
        return self.world.customers[0]

    @property
    def second(self) -> str:
        return self.world.customers[1]

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "DEMO_STATE_DIR": str(self.state_dir),
            "API_HOST": self.api.removeprefix("http://"),
            "STRIPE_API_BASE": self.world.url,
            "STRIPE_SECRET_KEY": TEST_KEY,
            "DATABASE_URL": self.db_url,
            **extra,
        }

    def send(self, customer: str, ts: int, quantity: int, key: str) -> None:
        ingest(self.api, [usage_event(self.world, customer, ts, quantity, key)])

    def drain(self) -> None:
        with psycopg.connect(self.db_url) as conn:
            assert drain(conn, self.world.gateway(), self.settings).errors == []

    def rogue(self, customer: str, ts: int, quantity: int, key: str) -> None:
        """Usage sent to Stripe behind the writer's back."""
        self.world.client.v1.billing.meter_events.create(
            {
                "event_name": self.world.event_name,
                "identifier": key,
                "timestamp": ts,
                "payload": {"stripe_customer_id": customer, "value": str(quantity)},
            }
        )

    def close_period(self, end: int) -> None:
        """Advance past `end` + 2 h (the invoice finalizes an hour after its draft) and
        store the first customer's newest cycle invoice as `invoice.json`, as
        advance-clock does."""
        self.world.advance(end + 2 * HOUR)
        invoices = self.world.client.v1.invoices.list({"customer": self.first}).data
        cycle = [i for i in invoices if i.billing_reason == "subscription_cycle"]
        newest = max(cycle, key=lambda i: i.created)
        write_json_atomic(
            self.state_dir / "invoice.json", {"id": newest.id, "customer": self.first}
        )

    def delete_mapping(self) -> None:
        """Delete the tenant's one price mapping through the API (as `invoke cleanup`)."""
        (mapping,) = requests.get(
            f"{self.api}/v1/mappings", params={"tenantId": str(self.world.tenant_id)}, timeout=10
        ).json()["mappings"]
        deleted = requests.delete(f"{self.api}/v1/mappings/{mapping['id']}", timeout=10)
        assert deleted.status_code == 200, deleted.text

    def validate(self, call_step: StepRunner, *args: str, **extra: str) -> Any:
        return call_step("validate", *args, env=self.env(**extra))

    def last_log(self) -> dict[str, Any]:
        lines = (self.state_dir / "validate.log").read_text().splitlines()
        data: dict[str, Any] = json.loads(lines[-1])
        return data


@contextmanager
def demo_world(
    emulator_url: str,
    db_url: str,
    tmp_path: Path,
    *,
    formula: str = "sum",
    aggregation: str = "sum",
    **extra: Any,
) -> Iterator[Demo]:
    world = build_world(
        emulator_url,
        db_url,
        customers=2,
        clock_start_ago_s=30 * HOUR,
        formula=formula,
        aggregation=aggregation,
    )
    settings = settings_for(emulator_url, db_url, **extra)
    with running_api(settings, db_url) as api:
        state_dir = tmp_path / "state"
        first = world.customers[0]
        subscription = world.client.v1.subscription_items.retrieve(world.items[first])
        save_state(
            state_dir,
            DemoState(
                tenantId=str(world.tenant_id),
                testClockId=world.clock_id,
                stripeApiBase=emulator_url,
                meterId=world.meter_id,
                priceId=world.price_id,
                customerId=first,
                subscriptionId=str(subscription.subscription),
                subscriptionItemId=world.items[first],
                frozenTime=world.frozen_time(),
                periodStart=world.period_start,
                periodEnd=world.period_end,
                setupComplete=True,
            ),
        )
        yield Demo(world, api, settings, db_url, state_dir, world.frozen_time())
