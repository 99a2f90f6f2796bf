-- Writer and reconciler bookkeeping (owned by stripemeter.writer / stripemeter.reconciler).

-- source_value: the bucket's own whole-unit aggregate the last push was computed from
--   (floor of total / last_value / max_value); a bucket is dirty when it differs.
-- push_count: accepted pushes for this bucket; part of the identifier of max/last pushes,
--   whose values may repeat.
ALTER TABLE write_log ADD COLUMN source_value numeric;
ALTER TABLE write_log ADD COLUMN push_count integer NOT NULL DEFAULT 0;
ALTER TABLE write_log ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX write_log_by_status ON write_log (mapping_id, status, hour_start);

-- Shared across processes: what the writer / reconciler last did per tenant, read by
-- GET /v1/writer/status, readiness and /metrics.
CREATE TABLE worker_state (
    component             text        NOT NULL CHECK (component IN ('writer', 'reconciler')),
    tenant_id             uuid        NOT NULL,
    last_push_at          timestamptz,
    last_success_at       timestamptz,
    last_error            text,
    last_error_at         timestamptz,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, tenant_id)
);

CREATE INDEX reconciliation_reports_by_item
    ON reconciliation_reports (mapping_id, customer_ref, period_start, created_at DESC);
