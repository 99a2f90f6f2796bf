-- Stripe webhook events received by POST /v1/stripe/webhooks (owned by stripemeter.webhooks).
-- One row per Stripe event id: the endpoint inserts with ON CONFLICT DO NOTHING, so a
-- redelivery or replay of the same event is recorded once and worked once. The row is also
-- the work item the workers pick up (status 'pending', NOTIFY stripemeter_work on commit).
CREATE TABLE stripe_webhook_events (
    event_id            text        PRIMARY KEY,
    type                text        NOT NULL,
    -- what the event asks of the workers: flush (writer pass for one customer),
    -- reconcile (one tenant), meter_errors (stored at receipt), none (ignored)
    action              text        NOT NULL CHECK (action IN ('flush', 'reconcile', 'meter_errors', 'none')),
    status              text        NOT NULL CHECK (status IN ('pending', 'done', 'failed', 'ignored')),
    livemode            boolean     NOT NULL DEFAULT false,
    stripe_created      timestamptz,
    received_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    tenant_id           uuid,
    customer_ref        text,
    stripe_customer_id  text,
    invoice_id          text,
    period_start        timestamptz,
    period_end          timestamptz,
    note                text,
    attempts            integer     NOT NULL DEFAULT 0,
    -- a failed attempt is retried after a backoff (stripemeter.webhooks.work) from here
    not_before          timestamptz,
    processed_at        timestamptz,
    error               text
);
CREATE INDEX stripe_webhook_events_pending ON stripe_webhook_events (received_at)
    WHERE status = 'pending';

-- What Stripe reported in billing.meter.error_report_triggered: one row per error code.
CREATE TABLE meter_error_reports (
    event_id            text        NOT NULL REFERENCES stripe_webhook_events (event_id),
    meter_id            text,
    error_code          text        NOT NULL,
    error_count         bigint      NOT NULL CHECK (error_count >= 0),
    sample_message      text,
    validation_start    timestamptz,
    validation_end      timestamptz,
    received_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (event_id, error_code)
);
CREATE INDEX meter_error_reports_received ON meter_error_reports (received_at DESC);
