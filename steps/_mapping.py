"""The demo's `price_mappings` row: the seed's upsert, verbatim, and its removal.

With no `DATABASE_URL` the rows live in the embedded PostgreSQL. A step that finds it
stopped (the stack is down) starts it for its own use and stops it again when the step
ends, whether it succeeded or failed: a step leaves the stack as it found it.
"""

from __future__ import annotations

import atexit
import contextlib
import warnings

import psycopg

from steps._env import StepError
from steps._state import DemoState
from stripemeter.config import Settings
from stripemeter.db import connect, embedded
from stripemeter.errors import BindingConflict, EmbeddedDatabaseError
from stripemeter.mappings import bindings

# The seed's statement (run.sh), with bound parameters where it interpolated shell
# variables ('$TENANT_ID', '$PRICE_ID', '$SUB_ITEM_ID').
UPSERT_MAPPING = """
INSERT INTO price_mappings (tenant_id, metric, aggregation, stripe_account, price_id, subscription_item_id, currency, active)
VALUES (%(tenant_id)s,'api_calls','sum','default',%(price_id)s,%(sub_item_id)s,'USD', true)
ON CONFLICT ON CONSTRAINT unique_active_mapping
DO UPDATE SET price_id=EXCLUDED.price_id,
              subscription_item_id=EXCLUDED.subscription_item_id,
              currency=EXCLUDED.currency,
              aggregation=EXCLUDED.aggregation,
              stripe_account=EXCLUDED.stripe_account,
              active=true;
"""  # noqa: E501

NOT_MIGRATED = "the database has no price_mappings table; run `invoke migrate` first"

DELETE_MAPPINGS = "DELETE FROM price_mappings WHERE tenant_id = %(tenant_id)s"


def database_url(settings: Settings) -> str:
    """`DATABASE_URL`, else the embedded server's (started for this step if stopped)."""
    if settings.DATABASE_URL:
        return settings.DATABASE_URL
    with warnings.catch_warnings():  # pgserver's platformdirs warns on import
        warnings.simplefilter("ignore")
        running = embedded.running_url(settings)
        if running:
            return running
        url = embedded.start(settings)
    atexit.register(_stop_started, settings)
    return url


def _stop_started(settings: Settings) -> None:
    """Stop the embedded server this step started (see the module docstring)."""
    with contextlib.suppress(EmbeddedDatabaseError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if embedded.stop(settings):
            print("stopped the embedded PostgreSQL this step started (the stack is down)")


def upsert_mapping(settings: Settings, state: DemoState) -> None:
    """Map the tenant's `api_calls` to the demo's price and bind the demo customer.

    The binding is the operator's (stripemeter.mappings.bindings): the writer pushes only to
    Stripe customers bound to the tenant, and the demo's customerRef is its Stripe id.
    """
    params = {
        "tenant_id": state.tenantId,
        "price_id": state.priceId,
        "sub_item_id": state.subscriptionItemId,
    }
    try:
        with connect(database_url(settings)) as conn:
            conn.execute(UPSERT_MAPPING, params)
            bindings.bind(conn, state.tenantId, state.customerId, state.customerId, verified=True)
    except psycopg.errors.UndefinedTable:
        raise StepError(NOT_MIGRATED) from None
    except BindingConflict as exc:
        raise StepError(f"{exc}; run `invoke setup --fresh` for a new demo customer") from None


def delete_mappings(settings: Settings, tenant_id: str) -> int:
    """Remove the tenant's price mappings; return how many rows went."""
    try:
        with connect(database_url(settings)) as conn:
            cursor = conn.execute(DELETE_MAPPINGS, {"tenant_id": tenant_id})
            return cursor.rowcount
    except psycopg.errors.UndefinedTable:
        raise StepError(NOT_MIGRATED) from None
