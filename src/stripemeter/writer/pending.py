"""What "pending" means, the one definition: usage Stripe does not hold yet.

A bucket is *uncovered* on a meter when the outbox has no series for it there, or the
series is active and accounted for another value than the bucket's now
(`uncovered_condition`; the value is `Aggregation.accounted_value`: the exact value for
`sum`, whose fractions carry across a period's hours, else the whole units). The writer
picks its work by this condition (`stripemeter.writer.buckets`); `PENDING_SQL` counts by
it, together with the outbox rows not sent yet, for `GET /v1/writer/status` and the
`/metrics` gauges. A bucket in both counts twice; units never do. (For `sum` the units
of an uncovered bucket are the usage added since its series last accounted for it:
exact, fractional; the whole units pushed for it depend on the period's other hours.)
"""

from __future__ import annotations

from stripemeter.aggregations import Aggregation, per_kind_sql


def state_join(event_name_sql: str) -> str:
    """SQL joining buckets `b` to their series `s` on the meter named by `event_name_sql`."""
    return (
        " LEFT JOIN push_state s ON s.tenant_id = b.tenant_id AND s.metric = b.metric"
        "  AND s.customer_ref = b.customer_ref AND s.hour_start = b.hour_start"
        f"  AND s.event_name = {event_name_sql}"
    )


def uncovered_condition(accounted_value_sql: str) -> str:
    """SQL true for a bucket `b` its series `s` does not cover: `accounted_value_sql` is
    the value the series should have accounted for (`Aggregation.accounted_value`)."""
    return (
        "(s.tenant_id IS NULL OR (s.status = 'active'"
        f" AND s.source_value IS DISTINCT FROM {accounted_value_sql}))"
    )


# Per tenant: (buckets, units) pending, for one tenant (`%(t)s`) or all (NULL).
PENDING_SQL = f"""
WITH uncovered AS (
    SELECT m.tenant_id,
           count(*) AS buckets,
           coalesce(sum({per_kind_sql("m.aggregation", Aggregation.uncovered_units)}), 0) AS units
    FROM price_mappings m
    JOIN usage_buckets b ON b.tenant_id = m.tenant_id AND b.metric = m.metric
   {state_join("m.meter_event_name")}
    WHERE m.active AND (%(t)s::text IS NULL OR m.tenant_id = %(t)s::text)
      AND {uncovered_condition(per_kind_sql("m.aggregation", Aggregation.accounted_value))}
    GROUP BY m.tenant_id
), unsent AS (
    SELECT tenant_id,
           count(DISTINCT (metric, customer_ref, hour_start, event_name)) AS buckets,
           coalesce(sum(value), 0) AS units
    FROM meter_pushes
    WHERE status = 'pending' AND (%(t)s::text IS NULL OR tenant_id = %(t)s::text)
    GROUP BY tenant_id
)
SELECT tenant_id, sum(buckets)::bigint AS buckets, sum(units) AS units
FROM (SELECT * FROM uncovered UNION ALL SELECT * FROM unsent) AS both_kinds
GROUP BY tenant_id
"""
