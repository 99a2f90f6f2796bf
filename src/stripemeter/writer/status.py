"""The writer's counters and its readiness check.

Counters (meter events sent, failed passes) count what this process did, on the
service's one registry. Readiness (`writer_health`) is `degraded` while the writer's
passes keep failing against Stripe, read from `worker_state` so any API process
answers it. The scrape-time gauges read from Postgres are `stripemeter.ops.gauges`';
what "pending" means is `stripemeter.writer.pending`'s.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prometheus_client import Counter

from stripemeter.ops.metrics import REGISTRY

EVENTS_SENT = Counter(
    "stripemeter_writer_meter_events",
    "Meter events the writer got Stripe to hold, by outcome (accepted, duplicate = "
    "identifier already held after a retry).",
    ["outcome"],
    registry=REGISTRY,
)
PUSH_FAILURES = Counter(
    "stripemeter_writer_failed_passes",
    "Writer passes that stopped on a Stripe error (all tenants together).",
    registry=REGISTRY,
)

# A writer error streak older than this no longer makes readiness degraded on its own
# (no writer is running any more to clear it).
FAILURE_RELEVANCE = timedelta(minutes=10)


def writer_health(pool: Any) -> tuple[str, str, str]:
    """Readiness of the Stripe side: `degraded` while the writer keeps failing on Stripe.

    The detail says how many tenants fail, never which, nor Stripe's error text
    (`writer_health_detail` gives those to an admin).
    """
    try:
        with pool.connection(timeout=2.0) as conn:
            row = conn.execute(
                "SELECT count(*) FROM worker_state WHERE component = 'writer'"
                " AND consecutive_failures > 0 AND last_error_at >= now() - %s",
                (FAILURE_RELEVANCE,),
            ).fetchone()
    except Exception as exc:
        return "stripe_writer", "unhealthy", f"cannot read writer state: {type(exc).__name__}"
    failing = int(row[0]) if row else 0
    if not failing:
        return "stripe_writer", "ok", "no recent Stripe failures"
    return "stripe_writer", "degraded", f"Stripe failing for {failing} tenant(s)"


def writer_health_detail(pool: Any, tenant_id: str | None) -> tuple[str, dict[str, Any]]:
    """Which tenants (all, or just `tenant_id`) the writer keeps failing for, and why."""
    with pool.connection(timeout=2.0) as conn:
        rows = conn.execute(
            "SELECT tenant_id, consecutive_failures, last_error, last_error_at"
            " FROM worker_state WHERE component = 'writer' AND consecutive_failures > 0"
            " AND last_error_at >= now() - %s AND (%s::text IS NULL OR tenant_id = %s::text)"
            " ORDER BY last_error_at DESC",
            (FAILURE_RELEVANCE, tenant_id, tenant_id),
        ).fetchall()
    tenants = [
        {
            "tenantId": str(tenant),
            "consecutiveFailures": failures,
            "lastError": error,
            "lastErrorAt": error_at.isoformat() if error_at else None,
        }
        for tenant, failures, error, error_at in rows
    ]
    extra: dict[str, Any] = {"tenants": tenants}
    if tenants:
        first = tenants[0]
        extra["detail"] = (
            f"Stripe failing for {len(tenants)} tenant(s); tenant {first['tenantId']}: "
            f"{first['consecutiveFailures']} failed pass(es) in a row, last error: "
            f"{first['lastError']}"
        )
    return "stripe_writer", extra
