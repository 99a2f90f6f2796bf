"""Model test of applying corrections: Stripe holds each correction exactly once.

Hypothesis generates schedules of apply attempts, each meeting one fault — Stripe
storing the object and answering 500 (once, or on every attempt), refusing before it
stores anything (500, 429), the lookup failing — or made by two appliers at once. After
every step Stripe holds at most one object tagged with the correction; after the
schedule a clean apply leaves exactly one, for exactly the correction's amount, the
correction `applied` with that object's id, and a further apply calls Stripe for
nothing (a fault armed on the create endpoint is still armed afterwards).

Everything is real: PostgreSQL, the emulator over HTTP, the `stripe` SDK. One closed
period (a paid invoice of 425 units) serves every example; each example applies a
correction of its own (an invoice item for the customer, or a credit note on the
invoice), so its Stripe objects are its own. STRIPEMETER_MODEL_EXAMPLES sets the number
of examples.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripemeter.corrections.apply import apply_correction
from stripemeter.db.pool import Pool, open_pool
from stripemeter.errors import StripeUnavailable
from stripemeter.stripe.gateway import CORRECTION_METADATA_KEY, RetryPolicy, StripeGateway
from tests.stripemeter.corrections.closed import UNIT, Closed, closed_period
from tests.support.stripe_world import fault

EXAMPLES = int(os.environ.get("STRIPEMETER_MODEL_EXAMPLES", "200"))
RETRY = RetryPolicy(attempts=3, base_delay_s=0.0005, max_delay_s=0.001)

# A fault: the emulator rule armed for one apply (None: no fault), by the endpoint it hits.
FAULTS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "stored_then_500_once": {"status": 500, "count": 1, "after_commit": True},
    "stored_then_500_always": {"status": 500, "count": 3, "after_commit": True},
    "refused_500_always": {"status": 500, "count": 3},
    "rate_limited_once": {"status": 429, "count": 1},
    "lookup_fails_always": {"status": 503, "count": 3, "method": "GET"},
}
steps = st.lists(
    st.one_of(
        st.tuples(st.just("apply"), st.sampled_from(sorted(FAULTS))),
        st.tuples(st.just("together"), st.just("none")),
    ),
    min_size=1,
    max_size=5,
)


@dataclass
class Model:
    closed: Closed
    pool: Pool
    gateway: StripeGateway
    invoice_id: str
    line_id: str

    def tagged(self, kind: str, correction_id: uuid.UUID) -> list[Any]:
        """The Stripe objects carrying this correction's tag."""
        client = self.closed.world.client
        if kind == "invoice_item":
            found = client.v1.invoice_items.list({"customer": self.closed.customer, "limit": 100})
        else:
            found = client.v1.credit_notes.list({"invoice": self.invoice_id, "limit": 100})
        return [
            obj
            for obj in found.auto_paging_iter()
            if obj.metadata is not None
            and obj.metadata.to_dict().get(CORRECTION_METADATA_KEY) == str(correction_id)
        ]

    def propose(self, kind: str, quantity: int, per_unit: bool) -> uuid.UUID:
        """A proposed correction of its own (a customerRef no other example uses); not
        `per_unit`: sent as an amount, as for tiered prices."""
        with psycopg.connect(self.closed.db_url) as conn:
            row = conn.execute(
                "INSERT INTO corrections (tenant_id, metric, customer_ref, stripe_customer_id,"
                " subscription_id, subscription_item_id, price_id, period_start, period_end,"
                " invoice_id, invoice_line_id, kind, quantity, unit_amount_decimal, amount,"
                " currency, description, ledger_quantity, billed_quantity) VALUES (%s,"
                " 'api_calls', %s, %s, %s, %s, %s, now() - make_interval(days => 31),"
                " now(), %s, %s, %s, %s, %s, %s, 'usd', 'model', 0, 0) RETURNING id",
                (
                    self.closed.tenant,
                    f"model-{uuid.uuid4().hex[:8]}",
                    self.closed.customer,
                    self.sub_id,
                    self.closed.world.items[self.closed.customer],
                    self.closed.world.price_id,
                    self.invoice_id,
                    self.line_id,
                    kind,
                    quantity,
                    UNIT if per_unit else None,
                    quantity * UNIT,
                ),
            ).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    @property
    def sub_id(self) -> str:
        item = self.closed.world.client.v1.subscription_items.retrieve(
            self.closed.world.items[self.closed.customer]
        )
        return str(item.subscription)


@pytest.fixture
def model(emulator_url: str, db_url: str) -> Iterator[Model]:
    with closed_period(emulator_url, db_url, billed=425) as closed:
        invoices = closed.world.client.v1.invoices.list({"customer": closed.customer}).data
        invoice = next(i for i in invoices if i.billing_reason == "subscription_cycle")
        line = next(x for x in invoice.lines.data if x.quantity == 425)
        pool = open_pool(db_url, max_size=2, wait=True)
        gateway = StripeGateway(closed.world.client, retry=RETRY, clock_cache_s=60.0)
        try:
            yield Model(closed, pool, gateway, str(invoice.id), str(line.id))
        finally:
            pool.close()


def _arm(model: Model, kind: str, name: str) -> None:
    rule = FAULTS[name]
    if rule is None:
        return
    rule = dict(rule)
    method = rule.pop("method", "POST")
    path = "/v1/invoiceitems" if kind == "invoice_item" else "/v1/credit_notes"
    fault(model.closed.world.url, method=method, path=path, **rule)


def _apply(model: Model, correction_id: uuid.UUID) -> str | None:
    """The Stripe object id, or None when Stripe stayed unavailable (apply again later)."""
    try:
        done = apply_correction(model.pool, model.gateway, correction_id, tenant_id=None)
    except StripeUnavailable:
        return None
    return done.stripe_object_id


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    kind=st.sampled_from(["invoice_item", "credit_note"]),
    quantity=st.integers(min_value=1, max_value=3),
    per_unit=st.booleans(),
    schedule=steps,
)
def test_any_schedule_of_applies_and_faults_leaves_exactly_one_object(
    model: Model, kind: str, quantity: int, per_unit: bool, schedule: list[tuple[str, str]]
) -> None:
    url = model.closed.world.url
    # Credit notes share the one invoice line, which Stripe lets be credited either by
    # quantity or by amount, never both (a price is always corrected the same way).
    per_unit = per_unit or kind == "credit_note"
    correction_id = model.propose(kind, quantity, per_unit)
    seen: set[str] = set()
    for step, name in schedule:
        _arm(model, kind, name)
        if step == "together":
            results: list[str | None] = []

            def one(into: list[str | None] = results) -> None:
                into.append(_apply(model, correction_id))

            threads = [threading.Thread(target=one) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            results = [_apply(model, correction_id)]
        requests.delete(f"{url}/_emulator/faults", timeout=10).raise_for_status()
        tagged = model.tagged(kind, correction_id)
        assert len(tagged) <= 1, (schedule, [t.id for t in tagged])
        seen |= {r for r in results if r is not None}
        assert seen <= {t.id for t in tagged}
    final = _apply(model, correction_id)
    (obj,) = model.tagged(kind, correction_id)
    assert final == obj.id and seen <= {obj.id}
    assert (obj.amount if kind == "invoice_item" else obj.total) == quantity * UNIT
    billed_as = obj.quantity if kind == "invoice_item" else obj.lines.data[0].quantity
    assert billed_as == (quantity if per_unit else (1 if kind == "invoice_item" else None))
    # Applied: a further apply answers it unchanged and sends Stripe nothing.
    _arm(model, kind, "refused_500_always")
    assert _apply(model, correction_id) == obj.id
    armed = requests.get(f"{url}/_emulator/faults", timeout=10).json()["faults"]
    assert [rule["count"] for rule in armed] == [3]
    requests.delete(f"{url}/_emulator/faults", timeout=10).raise_for_status()
