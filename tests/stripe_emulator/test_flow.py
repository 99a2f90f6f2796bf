"""The corrected flow of stripe-api-facts.md §7.1 through the official SDK."""

from __future__ import annotations

import time

import stripe

from tests.stripe_emulator.helpers import wait_ready


def test_facts_7_1_flow_bills_thirty_calls_for_150_and_pays(client: stripe.StripeClient) -> None:
    c = client
    now = int(time.time())
    clock = c.v1.test_helpers.test_clocks.create(
        {"frozen_time": now - 7200, "name": "metered-demo"}
    )
    meter = c.v1.billing.meters.create(
        {
            "display_name": "API calls",
            "event_name": "api_calls",
            "default_aggregation": {"formula": "sum"},
        }
    )
    product = c.v1.products.create({"name": "API"})
    price = c.v1.prices.create(
        {
            "currency": "usd",
            "product": product.id,
            "unit_amount": 5,
            "nickname": "per call",
            "recurring": {"interval": "month", "usage_type": "metered", "meter": meter.id},
        }
    )
    cus = c.v1.customers.create({"test_clock": clock.id, "email": "demo@example.com"})
    pm = c.v1.payment_methods.attach("pm_card_visa", {"customer": cus.id})
    c.v1.customers.update(cus.id, {"invoice_settings": {"default_payment_method": pm.id}})
    sub = c.v1.subscriptions.create(
        {
            "customer": cus.id,
            "items": [{"price": price.id}],
            "collection_method": "charge_automatically",
        }
    )
    item = sub["items"].data[0]
    assert sub.status == "active"
    assert item.current_period_start == now - 7200
    c.v1.test_helpers.test_clocks.advance(clock.id, {"frozen_time": now - 300})
    wait_ready(c, clock.id)
    for i, ts in enumerate([now - 5400, now - 3600, now - 600]):
        c.v1.billing.meter_events.create(
            {
                "event_name": "api_calls",
                "identifier": f"demo-{sub.id}-{i}",
                "timestamp": ts,
                "payload": {"stripe_customer_id": cus.id, "value": "10"},
            }
        )
    summaries = c.v1.billing.meters.event_summaries.list(
        meter.id,
        {
            "customer": cus.id,
            "start_time": item.current_period_start // 60 * 60,
            "end_time": (now // 60 + 1) * 60,
        },
    )
    assert [s.aggregated_value for s in summaries.data] == [30.0]
    c.v1.test_helpers.test_clocks.advance(
        clock.id, {"frozen_time": item.current_period_start + 35 * 86400}
    )
    wait_ready(c, clock.id)
    invoices = list(c.v1.invoices.list({"subscription": sub.id}).auto_paging_iter())
    cycle = [i for i in invoices if i.billing_reason == "subscription_cycle"]
    assert len(cycle) == 1
    inv = cycle[0]
    line = next(
        ln for ln in inv.lines.data if ln.pricing and ln.pricing.price_details.price == price.id
    )
    assert inv.status == "paid"
    assert inv.status_transitions.finalized_at == item.current_period_end + 3600
    assert inv.status_transitions.paid_at == item.current_period_end + 3600
    assert (inv.amount_due, inv.amount_paid, inv.total, inv.subtotal) == (150, 150, 150, 150)
    assert inv.parent.subscription_details.subscription == sub.id
    assert inv.customer == cus.id and inv.test_clock == clock.id and inv.currency == "usd"
    assert line.quantity == 30
    assert str(line.quantity_decimal) == "30"
    assert line.amount == 150
    assert line.pricing.price_details.product == product.id
    assert (line.period.start, line.period.end) == (
        item.current_period_start,
        item.current_period_end,
    )
    creation = [i for i in invoices if i.billing_reason == "subscription_create"]
    assert [(i.status, i.amount_due) for i in creation] == [("paid", 0)]
    rolled = c.v1.subscription_items.retrieve(item.id)
    assert rolled.current_period_start == item.current_period_end
    deleted = c.v1.test_helpers.test_clocks.delete(clock.id)
    assert deleted.deleted is True
