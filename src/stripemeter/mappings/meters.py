"""Active price mappings and what they mean on the Stripe side.

A mapping names a metered price; the meter comes from the price's `recurring.meter`
and is cached on the mapping row (meter id, event name, payload keys), so the writer
asks Stripe once per mapping, not once per push. The cache is only trusted for the price
and aggregation it was resolved for (`meter_resolved_for`): a mapping moved to another
price, or from `sum` to `max`, resolves its meter and checks the formula again instead
of pushing on to the old meter. Which formula serves which aggregation is
`stripemeter.aggregations`' business. Which Stripe customer a `customerRef` is
billed as is `stripemeter.mappings.bindings`' business.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from stripemeter.aggregations import AGGREGATIONS, Aggregation, AggregationName
from stripemeter.db.pool import ConnOrPool, borrow
from stripemeter.errors import StripeRefused
from stripemeter.stripe.gateway import MeterInfo, StripeGateway


@dataclass(frozen=True)
class Mapping:
    """One active row of `price_mappings`."""

    id: UUID
    tenant_id: str
    metric: str
    aggregation: AggregationName
    stripe_account: str
    price_id: str
    subscription_item_id: str | None
    meter_id: str | None
    meter_event_name: str | None
    meter_customer_key: str | None
    meter_value_key: str | None
    meter_resolved_for: str | None = None

    @property
    def kind(self) -> Aggregation:
        """What the mapping's aggregation means for the writer and the reconciler."""
        return AGGREGATIONS[self.aggregation]

    @property
    def meter_key(self) -> str:
        """What a cached meter must have been resolved for to serve this mapping."""
        return f"{self.price_id}|{self.aggregation}"

    def cached_meter(self) -> MeterInfo | None:
        """The meter cached on the row, if every field is there."""
        if self.meter_resolved_for != self.meter_key or not (
            self.meter_id
            and self.meter_event_name
            and self.meter_customer_key
            and self.meter_value_key
        ):
            return None
        return MeterInfo(
            meter_id=self.meter_id,
            event_name=self.meter_event_name,
            customer_key=self.meter_customer_key,
            value_key=self.meter_value_key,
            formula=self.kind.meter_formula,
        )


def active_mappings(conn: psycopg.Connection, tenant_id: str | None = None) -> list[Mapping]:
    """The active mappings, of one tenant or of all, in a stable order."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT id, tenant_id, metric, aggregation, stripe_account, price_id,"
            " subscription_item_id, meter_id, meter_event_name, meter_customer_key,"
            " meter_value_key, meter_resolved_for FROM price_mappings"
            " WHERE active AND (%(t)s::text IS NULL OR tenant_id = %(t)s::text)"
            " ORDER BY tenant_id, metric",
            {"t": tenant_id},
        )
        return [Mapping(**row) for row in cur.fetchall()]


def ensure_meter(db: ConnOrPool, gateway: StripeGateway, mapping: Mapping) -> MeterInfo:
    """The mapping's meter: from the row's cache, else from Stripe (then cached).

    Stripe is asked while no connection is borrowed from `db`; the cache is written
    afterwards. Raises StripeRefused when the price has no meter or the meter's formula
    is not the one the mapping's aggregation needs (`Aggregation.meter_formula`).
    """
    cached = mapping.cached_meter()
    if cached is not None:
        return cached
    meter = gateway.price_meter(mapping.price_id)
    needed = mapping.kind.meter_formula
    if meter.formula != needed:
        raise StripeRefused(
            f"mapping {mapping.metric} ({mapping.aggregation}) needs a meter with formula "
            f"'{needed}' ({mapping.kind.formula_reason}), but price {mapping.price_id} uses"
            f" meter {meter.meter_id} with formula '{meter.formula}'; map a price whose"
            f" meter has formula '{needed}'",
            code="meter_formula_mismatch",
            param="priceId",
        )
    with borrow(db) as conn:
        conn.execute(
            "UPDATE price_mappings SET meter_id = %s, meter_event_name = %s,"
            " meter_customer_key = %s, meter_value_key = %s, meter_resolved_for = %s,"
            " updated_at = now() WHERE id = %s",
            (
                meter.meter_id,
                meter.event_name,
                meter.customer_key,
                meter.value_key,
                mapping.meter_key,
                mapping.id,
            ),
        )
        conn.commit()
    return meter
