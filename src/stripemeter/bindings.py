"""Customer bindings: which Stripe customer a tenant's `customerRef` is billed as.

Every tenant shares the one Stripe account the service is configured with, so a
`customerRef` is never trusted as a Stripe customer id by itself: tenant A could
otherwise bill tenant B's customers. A binding (tenant, customerRef -> Stripe customer)
is operator work, and one Stripe customer belongs to at most one tenant (the table's
UNIQUE constraint). The writer and the reconciler resolve customers here and nowhere
else; usage of an unbound customerRef stays in the ledger and is not pushed.
"""

from __future__ import annotations

from uuid import UUID

import psycopg


class BindingConflict(Exception):
    """The Stripe customer is already bound elsewhere (a 409 at the API)."""


def stripe_customer_for(conn: psycopg.Connection, tenant_id: UUID, customer_ref: str) -> str | None:
    """The Stripe customer id bound to the tenant's customerRef, or None (do not push)."""
    row = conn.execute(
        "SELECT stripe_customer_id FROM customer_bindings"
        " WHERE tenant_id = %s AND customer_ref = %s",
        (tenant_id, customer_ref),
    ).fetchone()
    return str(row[0]) if row else None


def bound_customers(conn: psycopg.Connection, tenant_id: UUID) -> dict[str, str]:
    """The tenant's bindings, customerRef -> Stripe customer id."""
    rows = conn.execute(
        "SELECT customer_ref, stripe_customer_id FROM customer_bindings WHERE tenant_id = %s"
        " ORDER BY customer_ref",
        (tenant_id,),
    ).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def bind(
    conn: psycopg.Connection,
    tenant_id: UUID,
    customer_ref: str,
    stripe_customer_id: str,
    *,
    verified: bool = False,
) -> None:
    """Bind (or re-bind) the tenant's customerRef; not committed here.

    Raises BindingConflict when the Stripe customer is bound to another tenant (or to
    another customerRef), without saying which.
    """
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO customer_bindings (tenant_id, customer_ref, stripe_customer_id,"
                " verified_at) VALUES (%s, %s, %s, CASE WHEN %s THEN now() END)"
                " ON CONFLICT (tenant_id, customer_ref) DO UPDATE SET"
                " stripe_customer_id = EXCLUDED.stripe_customer_id,"
                " verified_at = EXCLUDED.verified_at",
                (tenant_id, customer_ref, stripe_customer_id, verified),
            )
    except psycopg.errors.UniqueViolation:
        raise BindingConflict(
            f"Stripe customer {stripe_customer_id} is already bound to another customerRef"
            " or tenant; a Stripe customer can be billed by one tenant only"
        ) from None
