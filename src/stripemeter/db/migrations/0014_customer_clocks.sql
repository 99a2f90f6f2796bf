-- The test clock each bound Stripe customer lives on and its latest known frozen_time
-- (owned by stripemeter.clocks). A customer's "now" is its clock's frozen_time; customers
-- without a row or with test_clock_id NULL live on the wall clock. frozen_time only moves
-- forward (clocks only advance), whoever observed it: binding verification, the
-- test_helpers.test_clock.ready webhook, the writer's Stripe reads, ingest's re-read.
CREATE TABLE customer_clocks (
    tenant_id           text        NOT NULL,
    stripe_customer_id  text        NOT NULL,
    test_clock_id       text,
    frozen_time         timestamptz,
    observed_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, stripe_customer_id)
);
CREATE INDEX customer_clocks_by_clock ON customer_clocks (test_clock_id)
    WHERE test_clock_id IS NOT NULL;

-- The test_helpers.test_clock.ready webhook is applied at receipt (action 'clock').
ALTER TABLE stripe_webhook_events DROP CONSTRAINT stripe_webhook_events_action_check;
ALTER TABLE stripe_webhook_events ADD CONSTRAINT stripe_webhook_events_action_check
    CHECK (action IN ('flush', 'reconcile', 'meter_errors', 'clock', 'none'));
