-- Background reconciliation runs requested through `POST /v1/reconciliation/run`
-- (owned by stripemeter.reconciliation_runs). At most one run per tenant is queued or
-- running at a time: a second request finds it through the partial unique index and
-- gets the same run id, so a flood of requests costs one run. The process executing a
-- run refreshes `heartbeat_at`; a run whose process died is failed once it goes stale.
CREATE TABLE reconciliation_runs (
    id            uuid        PRIMARY KEY,
    tenant_id     uuid        NOT NULL,
    status        text        NOT NULL DEFAULT 'queued'
                              CHECK (status IN ('queued', 'running', 'done', 'failed')),
    requested_at  timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    report_count  integer,
    reports       jsonb,
    error_code    text,
    error         text
);

CREATE UNIQUE INDEX reconciliation_runs_one_active_per_tenant
    ON reconciliation_runs (tenant_id) WHERE status IN ('queued', 'running');

CREATE INDEX reconciliation_runs_by_tenant
    ON reconciliation_runs (tenant_id, requested_at DESC);
