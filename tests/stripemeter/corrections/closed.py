"""A closed billing period on the emulator, served by the real API: the world the
corrections tests start from."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import requests

from stripemeter.config import Settings
from stripemeter.reconciler.engine import reconcile
from stripemeter.writer.passes import drain
from tests.support.stripe_world import (
    HOUR,
    StripeWorld,
    build_world,
    ingest,
    running_api,
    settings_for,
    usage_event,
)

UNIT = 5  # cents per call: the world's price


@dataclass
class Closed:
    """A world whose first period is invoiced (finalized, paid), with the API serving it."""

    world: StripeWorld
    api: str
    settings: Settings
    db_url: str
    customer: str
    frozen: int  # the clock's time when the usage was sent

    @property
    def tenant(self) -> str:
        return str(self.world.tenant_id)

    def late(self, quantity: int, key: str) -> None:
        """Usage for the closed period, arriving after its invoice was finalized."""
        ingest(
            self.api,
            [usage_event(self.world, self.customer, self.frozen - 2 * HOUR, quantity, key)],
        )
        self.drain()

    def propose_late(self, quantity: int, key: str) -> dict[str, Any]:
        """Late usage, a reconcile, and the one correction it proposes."""
        self.late(quantity, key)
        self.reconcile()
        (proposed,) = self.corrections()
        return proposed

    def drain(self) -> None:
        with psycopg.connect(self.db_url) as conn:
            assert drain(conn, self.world.gateway(), self.settings).errors == []

    def reconcile(self) -> list[dict[str, Any]]:
        with psycopg.connect(self.db_url) as conn:
            return reconcile(conn, self.world.gateway(), self.settings, self.tenant)

    def corrections(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"tenantId": self.tenant} | ({"status": status} if status else {})
        answer = requests.get(f"{self.api}/v1/corrections", params=params, timeout=10)
        assert answer.status_code == 200, answer.text
        data: list[dict[str, Any]] = answer.json()["data"]
        return data

    def apply(self, correction_id: str, *, status: int = 200, **params: str) -> dict[str, Any]:
        answer = requests.post(
            f"{self.api}/v1/corrections/{correction_id}/apply", params=params, timeout=30
        )
        assert answer.status_code == status, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def invoice_items(self) -> list[Any]:
        """Every invoice item Stripe holds for the customer."""
        return list(self.world.client.v1.invoice_items.list({"customer": self.customer}).data)

    def credit_notes(self, invoice_id: str) -> list[Any]:
        return list(self.world.client.v1.credit_notes.list({"invoice": invoice_id}).data)

    def period_report(self) -> dict[str, Any]:
        month = time.strftime("%Y-%m", time.gmtime(self.world.period_start))
        answer = requests.get(
            f"{self.api}/v1/reconciliation/{month}", params={"tenantId": self.tenant}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.world.period_start))
        (report,) = [r for r in answer.json()["reports"] if r["periodStart"] == start]
        return report


@contextmanager
def closed_period(
    emulator_url: str, db_url: str, *, billed: int, rogue: int = 0, **extra: Any
) -> Iterator[Closed]:
    """`billed` units ingested and pushed (plus `rogue` units sent to Stripe behind the
    writer's back), then the clock moved past the period end: the invoice is paid."""
    world = build_world(emulator_url, db_url, customers=1, clock_start_ago_s=30 * HOUR)
    (customer,) = world.customers
    settings = settings_for(emulator_url, db_url, **extra)
    frozen = world.frozen_time()
    with running_api(settings, db_url) as api:
        closed = Closed(world, api, settings, db_url, customer, frozen)
        first = billed - billed // 3
        ingest(
            api,
            [
                usage_event(world, customer, frozen - 3 * HOUR, first, "u1"),
                usage_event(world, customer, frozen - HOUR, billed - first, "u2"),
            ],
        )
        closed.drain()
        if rogue:
            world.client.v1.billing.meter_events.create(
                {
                    "event_name": world.event_name,
                    "identifier": "rogue-1",
                    "timestamp": frozen - 1800,
                    "payload": {"stripe_customer_id": customer, "value": str(rogue)},
                }
            )
        world.advance(world.period_end + 2 * HOUR)
        yield closed
