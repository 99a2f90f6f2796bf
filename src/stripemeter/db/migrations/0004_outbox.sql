-- Exactly-once pushes by an outbox (owned by stripemeter.writer_outbox).
--
-- push_state: per source bucket (tenant, metric, customer, hour) and Stripe destination
--   (the meter's event_name): what the outbox already covers. It is keyed by the
--   destination, not by the mapping, so the write history outlives a deleted mapping and a
--   mapping re-created for the same meter knows what was sent; a mapping moved to another
--   meter starts a new series (generation) at 0 on that meter.
--   covered: sum -> whole units in this series' outbox rows (pending, sent or quarantined);
--            max/last -> the value of the latest row.
--   source_value: the bucket's own whole-unit aggregate the series last accounted for.
-- meter_pushes: the outbox. A row is committed BEFORE its meter event is sent and carries
--   everything needed to re-send it (identifier, value, timestamp, payload keys), so a
--   pending row is re-sent with its own identifier until Stripe has it, whatever happened
--   to the mapping since.

CREATE TABLE push_state (
    tenant_id           uuid        NOT NULL,
    metric              text        NOT NULL,
    customer_ref        text        NOT NULL,
    hour_start          timestamptz NOT NULL,
    event_name          text        NOT NULL,
    stripe_customer_id  text        NOT NULL,
    aggregation         text        NOT NULL CHECK (aggregation IN ('sum', 'max', 'last')),
    mapping_id          uuid,  -- the mapping that last pushed; no FK on purpose
    source_value        numeric     NOT NULL DEFAULT 0,
    covered             numeric     NOT NULL DEFAULT 0,
    push_count          integer     NOT NULL DEFAULT 0,
    status              text        NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'post_close', 'too_old')),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, metric, customer_ref, hour_start, event_name)
);

CREATE TABLE meter_pushes (
    seq                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           uuid        NOT NULL,
    metric              text        NOT NULL,
    customer_ref        text        NOT NULL,
    hour_start          timestamptz NOT NULL,
    event_name          text        NOT NULL,
    stripe_customer_id  text        NOT NULL,
    mapping_id          uuid,
    meter_id            text        NOT NULL,
    customer_key        text        NOT NULL,
    value_key           text        NOT NULL,
    value               numeric     NOT NULL CHECK (value >= 0),
    covers              numeric     NOT NULL,
    identifier          text        NOT NULL UNIQUE CHECK (length(identifier) <= 100),
    event_ts            bigint      NOT NULL,
    status              text        NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'sent', 'quarantined')),
    attempts            integer     NOT NULL DEFAULT 0,
    first_attempt_at    timestamptz,
    sent_at             timestamptz,
    outcome             text,
    error               text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, metric, customer_ref, hour_start, event_name)
        REFERENCES push_state (tenant_id, metric, customer_ref, hour_start, event_name)
);
CREATE INDEX meter_pushes_pending ON meter_pushes (tenant_id, customer_ref, seq)
    WHERE status = 'pending';
CREATE INDEX meter_pushes_quarantined ON meter_pushes (tenant_id, created_at)
    WHERE status = 'quarantined';
CREATE INDEX meter_pushes_by_series
    ON meter_pushes (tenant_id, metric, customer_ref, hour_start, event_name);

-- Carry the old per-mapping write log over: what it recorded as pushed is covered.
INSERT INTO push_state (tenant_id, metric, customer_ref, hour_start, event_name,
                        stripe_customer_id, aggregation, mapping_id, source_value, covered,
                        push_count, status)
SELECT w.tenant_id, w.metric, w.customer_ref, w.hour_start, m.meter_event_name,
       w.customer_ref, m.aggregation, w.mapping_id, coalesce(w.source_value, w.pushed_value),
       w.pushed_value, w.push_count,
       CASE w.status WHEN 'pushed' THEN 'active' ELSE w.status END
FROM write_log w JOIN price_mappings m ON m.id = w.mapping_id
WHERE m.meter_event_name IS NOT NULL
ON CONFLICT DO NOTHING;
DROP TABLE write_log;

-- The cached meter is only valid for the price and aggregation it was resolved for: a
-- changed mapping resolves (and checks the formula) again.
ALTER TABLE price_mappings ADD COLUMN meter_resolved_for text;
UPDATE price_mappings SET meter_resolved_for = price_id || '|' || aggregation
WHERE meter_id IS NOT NULL;
