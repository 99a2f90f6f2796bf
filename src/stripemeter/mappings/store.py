"""Price mappings: which Stripe price (and meter) a tenant's metric is billed through.

The table keeps at most one active and one inactive mapping per (tenant, metric)
(`unique_active_mapping`). Only active mappings bill: the writer and the reconciler
read `WHERE active`. `upsert_mapping` treats a metric as having one mapping, its
active one if any, else its inactive one: posting replaces that mapping's target and
sets its `active` flag (`false` switches the metric's billing off, keeping the row and
its id; `true`, the default, switches it on again). Only when the metric has both rows
(left by an older version) and the active one is switched off does it refuse
(`MappingConflict`): the older inactive row must be deleted first, nothing is deleted
implicitly.

`verify_item` is the ownership check of a mapping's optional subscription item: all
tenants share one Stripe account, so an item id alone could name another tenant's
subscription (and put it in this tenant's reconciliation reports).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from stripemeter.errors import ItemRefused, MappingConflict
from stripemeter.jsonio import iso
from stripemeter.mappings.bindings import bound_customers
from stripemeter.stripe.gateway import StripeGateway

COLUMNS = (
    "id, tenant_id, metric, aggregation, stripe_account, price_id, subscription_item_id,"
    " currency, active, meter_id, meter_event_name, meter_customer_key, meter_value_key,"
    " created_at, updated_at"
)

UPSERT = f"""
INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account, price_id,
                            subscription_item_id, currency, active, meter_id,
                            meter_event_name, meter_customer_key, meter_value_key)
VALUES (%(tenant_id)s, %(metric)s, %(aggregation)s, %(stripe_account)s, %(price_id)s,
        %(subscription_item_id)s, %(currency)s, true, %(meter_id)s, %(meter_event_name)s,
        %(meter_customer_key)s, %(meter_value_key)s)
ON CONFLICT ON CONSTRAINT unique_active_mapping DO UPDATE SET
    aggregation = EXCLUDED.aggregation,
    stripe_account = EXCLUDED.stripe_account,
    price_id = EXCLUDED.price_id,
    subscription_item_id = EXCLUDED.subscription_item_id,
    currency = EXCLUDED.currency,
    meter_id = coalesce(EXCLUDED.meter_id, price_mappings.meter_id),
    meter_event_name = coalesce(EXCLUDED.meter_event_name, price_mappings.meter_event_name),
    meter_customer_key = coalesce(EXCLUDED.meter_customer_key,
                                  price_mappings.meter_customer_key),
    meter_value_key = coalesce(EXCLUDED.meter_value_key, price_mappings.meter_value_key),
    active = true,
    updated_at = now()
RETURNING {COLUMNS}, (xmax = 0) AS created
"""

_JSON_NAMES = {
    "id": "id",
    "tenant_id": "tenantId",
    "metric": "metric",
    "aggregation": "aggregation",
    "stripe_account": "stripeAccount",
    "price_id": "priceId",
    "subscription_item_id": "subscriptionItemId",
    "currency": "currency",
    "active": "active",
    "meter_id": "meterId",
    "meter_event_name": "meterEventName",
    "meter_customer_key": "meterCustomerKey",
    "meter_value_key": "meterValueKey",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}


def to_json(row: dict[str, Any]) -> dict[str, Any]:
    """A `price_mappings` row in the API's camelCase shape."""
    out: dict[str, Any] = {}
    for column, name in _JSON_NAMES.items():
        value = row[column]
        if isinstance(value, UUID):
            value = str(value)
        elif column in ("created_at", "updated_at"):
            value = iso(value)
        out[name] = value
    return out


def bound_stripe_customers(conn: psycopg.Connection, tenant_id: str) -> set[str]:
    """The Stripe customer ids bound to the tenant."""
    return set(bound_customers(conn, tenant_id).values())


def verify_item(
    gateway: StripeGateway, item_id: str, price_id: str, tenant_customers: set[str]
) -> None:
    """Check with Stripe that `item_id` is on `price_id` and belongs to one of the tenant's
    bound Stripe customers; raise ItemRefused otherwise.

    An item of a customer not bound to the tenant is refused without saying whose it is
    or which price it is on; the price is named only for the tenant's own items.
    """
    owner = gateway.item_owner(item_id)
    if owner is None:
        raise ItemRefused(
            "unknown_subscription_item",
            f"Stripe has no subscription item {item_id}; check subscriptionItemId or omit it",
        )
    if owner.customer_id not in tenant_customers:
        raise ItemRefused(
            "subscription_item_not_bound",
            f"subscription item {item_id} belongs to a Stripe customer that is not bound to"
            " this tenant; bind the customer first (PUT /v1/customers/{customerRef}/binding)",
        )
    if owner.price_id != price_id:
        raise ItemRefused(
            "subscription_item_price_mismatch",
            f"subscription item {item_id} is on price {owner.price_id}, not {price_id};"
            " send the item's price as priceId or the item on that price",
        )


_TARGET_COLUMNS = (
    "aggregation",
    "stripe_account",
    "price_id",
    "subscription_item_id",
    "currency",
)
# Meter fields posted as null keep what was resolved before (as in UPSERT).
_METER_COLUMNS = ("meter_id", "meter_event_name", "meter_customer_key", "meter_value_key")

UPDATE_ONE = f"""
UPDATE price_mappings SET
    {", ".join(f"{c} = %({c})s" for c in _TARGET_COLUMNS)},
    {", ".join(f"{c} = coalesce(%({c})s, {c})" for c in _METER_COLUMNS)},
    active = %(active)s,
    updated_at = now()
WHERE id = %(id)s
RETURNING {COLUMNS}
"""

INSERT_INACTIVE = f"""
INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account, price_id,
                            subscription_item_id, currency, active, meter_id,
                            meter_event_name, meter_customer_key, meter_value_key)
VALUES (%(tenant_id)s, %(metric)s, %(aggregation)s, %(stripe_account)s, %(price_id)s,
        %(subscription_item_id)s, %(currency)s, false, %(meter_id)s, %(meter_event_name)s,
        %(meter_customer_key)s, %(meter_value_key)s)
RETURNING {COLUMNS}
"""


def upsert_mapping(conn: psycopg.Connection, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create or replace the mapping of (tenant, metric) with `values["active"]` (default
    true) as its flag (module doc); return (row, created).

    Raises MappingConflict (nothing changed) when switching off a metric that has both
    an active and an older inactive mapping.
    """
    active = bool(values.get("active", True))
    params = {**values, "active": active}
    with conn.cursor(row_factory=dict_row) as cur:
        # One writer per (tenant, metric): the choice below reads, then writes.
        cur.execute(
            "SELECT pg_advisory_xact_lock(hashtext('price_mappings:' || %s || ':' || %s))",
            (str(values["tenant_id"]), values["metric"]),
        )
        rows = cur.execute(
            "SELECT id, active FROM price_mappings WHERE tenant_id = %s AND metric = %s",
            (values["tenant_id"], values["metric"]),
        ).fetchall()
        ids = {bool(r["active"]): r["id"] for r in rows}
        if active and True in ids:
            row = cur.execute(UPDATE_ONE, {**params, "id": ids[True]}).fetchone()
            created = False
        elif True in ids or False in ids:
            if not active and True in ids and False in ids:
                conn.rollback()
                raise MappingConflict(
                    f"metric {values['metric']!r} already has an inactive mapping "
                    f"{ids[False]} beside its active one {ids[True]}; delete the inactive "
                    f"one (DELETE /v1/mappings/{ids[False]}) before switching this one off"
                )
            row = cur.execute(
                UPDATE_ONE, {**params, "id": ids.get(True, ids.get(False))}
            ).fetchone()
            created = False
        elif active:
            row = cur.execute(UPSERT, params).fetchone()
            created = bool(row is not None and row["created"])
        else:
            row = cur.execute(INSERT_INACTIVE, params).fetchone()
            created = True
    conn.commit()
    assert row is not None
    return to_json(row), created


def list_mappings(
    conn: psycopg.Connection, tenant_id: str, *, active: bool | None = None
) -> list[dict[str, Any]]:
    """Every mapping of a tenant (or only its active / inactive ones), active first."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            f"SELECT {COLUMNS} FROM price_mappings WHERE tenant_id = %s"
            " AND (%s::boolean IS NULL OR active = %s::boolean)"
            " ORDER BY active DESC, metric, created_at",
            (tenant_id, active, active),
        ).fetchall()
    return [to_json(row) for row in rows]


def get_mapping(conn: psycopg.Connection, mapping_id: UUID) -> dict[str, Any] | None:
    """One mapping by id, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            f"SELECT {COLUMNS} FROM price_mappings WHERE id = %s", (mapping_id,)
        ).fetchone()
    return None if row is None else to_json(row)


def delete_mapping(conn: psycopg.Connection, mapping_id: UUID) -> bool:
    """Remove a mapping; False when it did not exist.

    What was pushed for it stays in `push_state`/`meter_pushes` (keyed by the meter, not
    the mapping), so a mapping created again for the same meter sends nothing twice.
    """
    deleted = conn.execute("DELETE FROM price_mappings WHERE id = %s", (mapping_id,)).rowcount
    conn.commit()
    return deleted > 0
