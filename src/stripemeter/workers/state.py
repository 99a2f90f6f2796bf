"""Per-tenant state of the writer and the reconciler, kept in Postgres (`worker_state`).

Several processes may run workers; the API answers `/v1/writer/status`, readiness and
`/metrics` from this table, so every process sees the same picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg
from psycopg.rows import dict_row

Component = Literal["writer", "reconciler"]
_MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class WorkerState:
    """One row of `worker_state`."""

    component: str
    tenant_id: str
    last_push_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    consecutive_failures: int


def record_push(conn: psycopg.Connection, tenant_id: str) -> None:
    """Note that Stripe accepted a meter event for the tenant just now."""
    conn.execute(
        "INSERT INTO worker_state (component, tenant_id, last_push_at)"
        " VALUES ('writer', %s, now()) ON CONFLICT (component, tenant_id)"
        " DO UPDATE SET last_push_at = now(), updated_at = now()",
        (tenant_id,),
    )


def record_success(conn: psycopg.Connection, component: Component, tenant_id: str) -> None:
    """A full pass for the tenant succeeded: clear the error streak and the last error."""
    conn.execute(
        "INSERT INTO worker_state (component, tenant_id, last_success_at) VALUES (%s, %s, now())"
        " ON CONFLICT (component, tenant_id) DO UPDATE SET last_success_at = now(),"
        " last_error = NULL, consecutive_failures = 0, updated_at = now()",
        (component, tenant_id),
    )


def record_failure(
    conn: psycopg.Connection,
    component: Component,
    tenant_id: str,
    error: str,
    *,
    outage: bool = True,
) -> None:
    """A pass for the tenant failed: keep the reason.

    `outage` (Stripe unreachable or failing) lengthens the failure streak that makes
    readiness `degraded`; a refusal (bad customerRef, wrong meter) is only reported.
    """
    streak = "worker_state.consecutive_failures + 1" if outage else "0"
    conn.execute(
        "INSERT INTO worker_state (component, tenant_id, last_error, last_error_at,"
        " consecutive_failures) VALUES (%s, %s, %s, now(), %s)"
        " ON CONFLICT (component, tenant_id) DO UPDATE SET last_error = EXCLUDED.last_error,"
        f" last_error_at = now(), consecutive_failures = {streak}, updated_at = now()",
        (component, tenant_id, error[:_MAX_ERROR_CHARS], 1 if outage else 0),
    )


def read_state(
    conn: psycopg.Connection, component: Component, tenant_id: str
) -> WorkerState | None:
    """The tenant's row for one component, if any."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT component, tenant_id, last_push_at, last_success_at, last_error,"
            " last_error_at, consecutive_failures FROM worker_state"
            " WHERE component = %s AND tenant_id = %s",
            (component, tenant_id),
        )
        row = cur.fetchone()
    return WorkerState(**row) if row else None
