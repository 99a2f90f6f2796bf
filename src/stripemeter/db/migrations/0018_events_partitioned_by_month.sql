-- The ledger partitioned by month on `ts` (owned by stripemeter.ingest.ledger).
--
-- A unique constraint of a partitioned table must contain the partition key, so the
-- exactly-once rule on (tenant_id, idempotency_key) moves to its own table, `event_keys`
-- (not partitioned). The insert-and-count statement claims a key there first
-- (ON CONFLICT DO NOTHING) and inserts into `events` only the rows it claimed, in the same
-- statement: "seen" and "counted" still commit together, and a key re-sent with another
-- `ts` is still one event, whichever month it names.
--
-- `events` keeps its columns, its two read indexes and its append-only trigger; its
-- primary key becomes (tenant_id, idempotency_key, ts) (it leads with tenant_id, as every
-- key of the schema does). `seq` stays an identity column, no longer with its own unique
-- index (an identity never repeats; nothing looks a row up by seq alone).
--
-- Monthly partitions `events_pYYYYMM` cover [first of month, first of next) in UTC; a
-- default partition `events_default` takes any row no partition covers, so an insert never
-- fails for lack of one. This migration creates the partitions of every month the old
-- table holds and copies every row (seq included) inside its own transaction; partitions
-- ahead are made by `stripemeter.db.partitions.ensure_partitions`.
ALTER TABLE events RENAME TO events_unpartitioned;
DROP INDEX events_by_series;
DROP INDEX events_by_tenant_ts;
ALTER TABLE events_unpartitioned DROP CONSTRAINT events_pkey;
ALTER TABLE events_unpartitioned DROP CONSTRAINT events_seq_key;

CREATE TABLE events (
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    tenant_id        text        NOT NULL,
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
    PRIMARY KEY (tenant_id, idempotency_key, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX events_by_series ON events (tenant_id, metric, customer_ref, ts DESC, seq DESC);
CREATE INDEX events_by_tenant_ts ON events (tenant_id, ts DESC, seq DESC);
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_immutable();
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- Exactly once: one row per (tenant, key) ever accepted, with the ts it was accepted for.
CREATE TABLE event_keys (
    tenant_id        text        NOT NULL,
    idempotency_key  text        NOT NULL,
    ts               timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);

DO $$
DECLARE
    month timestamptz;
BEGIN
    FOR month IN
        SELECT DISTINCT date_trunc('month', ts, 'UTC') FROM events_unpartitioned ORDER BY 1
    LOOP
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
            'events_p' || to_char(month AT TIME ZONE 'UTC', 'YYYYMM'),
            month, (month AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
END
$$;

INSERT INTO events (seq, tenant_id, idempotency_key, metric, customer_ref, resource_id,
                    quantity, ts, source, meta, request_id, received_at)
OVERRIDING SYSTEM VALUE
SELECT seq, tenant_id, idempotency_key, metric, customer_ref, resource_id,
       quantity, ts, source, meta, request_id, received_at
FROM events_unpartitioned;
INSERT INTO event_keys (tenant_id, idempotency_key, ts)
SELECT tenant_id, idempotency_key, ts FROM events_unpartitioned;
SELECT setval(pg_get_serial_sequence('events', 'seq'),
              coalesce((SELECT max(seq) FROM events_unpartitioned), 0) + 1, false);
DROP TABLE events_unpartitioned;
