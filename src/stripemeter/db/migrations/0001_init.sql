-- stripemeter schema, version 1.
-- events is the immutable ledger; usage_buckets holds per-hour aggregates that are
-- updated in the same transaction as the ledger insert (see ledger.py).

CREATE TABLE events (
    seq              bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    tenant_id        uuid        NOT NULL,
    idempotency_key  text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    metric           text        NOT NULL,
    customer_ref     text        NOT NULL,
    resource_id      text,
    quantity         numeric(38, 6) NOT NULL CHECK (quantity >= 0),
    ts               timestamptz NOT NULL,
    source           text,
    meta             jsonb,
    request_id       text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX events_by_series ON events (tenant_id, metric, customer_ref, ts DESC, seq DESC);
CREATE INDEX events_by_tenant_ts ON events (tenant_id, ts DESC, seq DESC);

-- Ledger rows are never changed or removed.
CREATE FUNCTION events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is an append-only ledger: % refused', TG_OP;
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_immutable();

-- Request-level Idempotency-Key headers: the same header with another body is refused.
CREATE TABLE ingest_requests (
    scope            text        NOT NULL,
    idempotency_key  text        NOT NULL,
    body_sha256      text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, idempotency_key)
);

CREATE TABLE usage_buckets (
    tenant_id     uuid        NOT NULL,
    metric        text        NOT NULL,
    customer_ref  text        NOT NULL,
    hour_start    timestamptz NOT NULL,
    total         numeric     NOT NULL DEFAULT 0,
    max_value     numeric,
    last_value    numeric,
    last_ts       timestamptz,
    event_count   bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric, customer_ref, hour_start),
    CHECK (hour_start = date_trunc('hour', hour_start, 'UTC'))
);
CREATE INDEX usage_buckets_dirty ON usage_buckets (tenant_id, metric, updated_at);

CREATE TABLE price_mappings (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid    NOT NULL,
    metric                text    NOT NULL,
    aggregation           text    NOT NULL CHECK (aggregation IN ('sum', 'max', 'last')),
    stripe_account        text    NOT NULL DEFAULT 'default',
    price_id              text    NOT NULL,
    subscription_item_id  text    NULL,
    currency              text    NULL,
    active                boolean NOT NULL DEFAULT true,
    meter_id              text    NULL,
    meter_event_name      text    NULL,
    meter_customer_key    text    NULL,
    meter_value_key       text    NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT unique_active_mapping UNIQUE NULLS NOT DISTINCT (tenant_id, metric, active)
);

-- What Stripe holds per bucket and mapping: the cumulative whole units pushed so far.
CREATE TABLE write_log (
    mapping_id        uuid        NOT NULL REFERENCES price_mappings (id) ON DELETE CASCADE,
    tenant_id         uuid        NOT NULL,
    metric            text        NOT NULL,
    customer_ref      text        NOT NULL,
    hour_start        timestamptz NOT NULL,
    pushed_value      numeric     NOT NULL DEFAULT 0,
    last_identifier   text,
    last_pushed_at    timestamptz,
    status            text        NOT NULL DEFAULT 'pushed'
                      CHECK (status IN ('pushed', 'post_close', 'too_old')),
    PRIMARY KEY (mapping_id, customer_ref, hour_start)
);

CREATE TABLE reconciliation_reports (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid        NOT NULL,
    mapping_id            uuid        REFERENCES price_mappings (id) ON DELETE SET NULL,
    metric                text        NOT NULL,
    customer_ref          text        NOT NULL,
    subscription_item_id  text        NOT NULL,
    period_start          timestamptz NOT NULL,
    period_end            timestamptz NOT NULL,
    local_total           numeric     NOT NULL,
    stripe_total          numeric     NOT NULL,
    invoice_id            text,
    invoice_quantity      numeric,
    drift_abs             numeric     NOT NULL,
    drift_pct             numeric     NOT NULL,
    status                text        NOT NULL
                          CHECK (status IN ('ok', 'investigate', 'resolved', 'post_close')),
    final                 boolean     NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_reports_by_period
    ON reconciliation_reports (tenant_id, period_start, created_at DESC);

-- Suggested or applied corrections (e.g. usage that arrived after the invoice closed).
CREATE TABLE adjustments (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid        NOT NULL,
    mapping_id      uuid        REFERENCES price_mappings (id) ON DELETE SET NULL,
    metric          text        NOT NULL,
    customer_ref    text        NOT NULL,
    period_start    timestamptz NOT NULL,
    period_end      timestamptz NOT NULL,
    quantity_delta  numeric     NOT NULL,
    reason          text        NOT NULL,
    status          text        NOT NULL DEFAULT 'suggested'
                    CHECK (status IN ('suggested', 'applied', 'dismissed')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid        NOT NULL,
    name          text,
    prefix        text        NOT NULL,
    secret_sha256 text        NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
