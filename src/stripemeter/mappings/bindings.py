"""Customer bindings: which Stripe customer a tenant's `customerRef` is billed as.

Every tenant shares the one Stripe account the service is configured with, so a
`customerRef` is never trusted as a Stripe customer id by itself: tenant A could
otherwise bill tenant B's customers. A binding (tenant, customerRef -> Stripe customer)
is operator work, and one Stripe customer belongs to at most one tenant (the table's
UNIQUE constraint). The writer and the reconciler resolve customers here and nowhere
else; usage of an unbound customerRef stays in the ledger and is not pushed.

Bindings are made by an operator (`stripemeter bindings put`) or through the API with an
admin key (`PUT /v1/customers/{customerRef}/binding`); both check with Stripe first
(`verify_customer`) that the customer exists, and record when in `verified_at`; what
that check reads of the customer's test clock is stored for `stripemeter.clocks`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from stripemeter.clocks import record_clock
from stripemeter.errors import BindingConflict, UnknownStripeCustomer
from stripemeter.jsonio import iso
from stripemeter.stripe.gateway import ClockReading, StripeGateway


def stripe_customer_for(conn: psycopg.Connection, tenant_id: str, customer_ref: str) -> str | None:
    """The Stripe customer id bound to the tenant's customerRef, or None (do not push)."""
    row = conn.execute(
        "SELECT stripe_customer_id FROM customer_bindings"
        " WHERE tenant_id = %s AND customer_ref = %s",
        (tenant_id, customer_ref),
    ).fetchone()
    return str(row[0]) if row else None


def bound_customers(conn: psycopg.Connection, tenant_id: str) -> dict[str, str]:
    """The tenant's bindings, customerRef -> Stripe customer id."""
    rows = conn.execute(
        "SELECT customer_ref, stripe_customer_id FROM customer_bindings WHERE tenant_id = %s"
        " ORDER BY customer_ref",
        (tenant_id,),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def bind(
    conn: psycopg.Connection,
    tenant_id: str,
    customer_ref: str,
    stripe_customer_id: str,
    *,
    verified: bool = False,
    clock: ClockReading | None = None,
) -> bool:
    """Bind (or re-bind) the tenant's customerRef; not committed here.

    Returns True when the binding is new, False when it replaced (or repeated) the
    customerRef's binding. Raises BindingConflict when the Stripe customer is bound to
    another tenant (without saying which) or to another customerRef of this tenant
    (naming it: it is the caller's own). `clock`, what the verification read of the
    customer's test clock, is stored with it (`stripemeter.clocks`).
    """
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO customer_bindings (tenant_id, customer_ref, stripe_customer_id,"
                " verified_at) VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)"
                " ON CONFLICT (tenant_id, customer_ref) DO UPDATE SET"
                " stripe_customer_id = EXCLUDED.stripe_customer_id,"
                " verified_at = EXCLUDED.verified_at"
                " RETURNING (xmax = 0)",
                (tenant_id, customer_ref, stripe_customer_id, verified),
            ).fetchone()
            if clock is not None:
                record_clock(conn, tenant_id, stripe_customer_id, clock)
    except psycopg.errors.UniqueViolation:
        owner = conn.execute(
            "SELECT tenant_id, customer_ref FROM customer_bindings WHERE stripe_customer_id = %s",
            (stripe_customer_id,),
        ).fetchone()
        if owner is not None and owner[0] == tenant_id:
            raise BindingConflict(
                f"Stripe customer {stripe_customer_id} is already bound to customerRef "
                f"{owner[1]!r} of this tenant; delete that binding first to move it"
            ) from None
        raise BindingConflict(
            f"Stripe customer {stripe_customer_id} is already bound to another tenant;"
            " a Stripe customer can be billed by one tenant only"
        ) from None
    return bool(row[0]) if row else False


def unbind(conn: psycopg.Connection, tenant_id: str, customer_ref: str) -> bool:
    """Remove the tenant's binding of customerRef (not committed); False when there was none.

    Usage already pushed stays in Stripe; later usage of the customerRef is kept in the
    ledger and not pushed until it is bound again.
    """
    deleted = conn.execute(
        "DELETE FROM customer_bindings WHERE tenant_id = %s AND customer_ref = %s",
        (tenant_id, customer_ref),
    ).rowcount
    return deleted > 0


def list_bindings(conn: psycopg.Connection, tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's bindings in the API's camelCase shape, by customerRef."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            "SELECT tenant_id, customer_ref, stripe_customer_id, created_at, verified_at"
            " FROM customer_bindings WHERE tenant_id = %s ORDER BY customer_ref",
            (tenant_id,),
        ).fetchall()
    return [binding_json(row) for row in rows]


def get_binding(
    conn: psycopg.Connection, tenant_id: str, customer_ref: str
) -> dict[str, Any] | None:
    """One binding in the API's shape, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT tenant_id, customer_ref, stripe_customer_id, created_at, verified_at"
            " FROM customer_bindings WHERE tenant_id = %s AND customer_ref = %s",
            (tenant_id, customer_ref),
        ).fetchone()
    return None if row is None else binding_json(row)


def binding_json(row: dict[str, Any]) -> dict[str, Any]:
    """A `customer_bindings` row as the API shows it."""
    verified: datetime | None = row["verified_at"]
    return {
        "tenantId": str(row["tenant_id"]),
        "customerRef": row["customer_ref"],
        "stripeCustomerId": row["stripe_customer_id"],
        "createdAt": iso(row["created_at"]),
        "verifiedAt": None if verified is None else iso(verified),
    }


def verify_customer(gateway: StripeGateway, stripe_customer_id: str) -> ClockReading:
    """The customer's test clock (both fields None without one), after refusing
    (UnknownStripeCustomer) a customer Stripe does not have or has deleted.

    Stripe being unreachable raises the gateway's StripeUnavailable: nothing is bound
    unverified through this path.
    """
    reading = gateway.read_customer_clock(stripe_customer_id)
    if reading is None:
        raise UnknownStripeCustomer(
            f"Stripe has no customer {stripe_customer_id} (or it was deleted); create it"
            " in Stripe first, then bind it"
        )
    return reading
