-- Tenant ids become text: any non-empty printable string of at most 64 characters
-- (StripeMeter's `your-tenant-id`, `demo`), UUIDs still fine. The application
-- validates them (`stripemeter.ingest.validation.check_tenant_id`) and writes a
-- UUID-shaped id in lower-case canonical form, which is exactly what `uuid::text`
-- gives the existing rows here: a tenant keeps its meaning, keys and indexes their
-- columns (PostgreSQL rebuilds them with the new type).
--
-- Every `tenant_id uuid` column of this schema is converted (events, ingest_requests,
-- usage_buckets, price_mappings, write_log, reconciliation_reports, adjustments,
-- api_keys, worker_state, push_state, meter_pushes, customer_bindings,
-- reconciliation_runs, and any other table a migration before this one added). A
-- foreign key over tenant_id (meter_pushes -> push_state) cannot span a uuid and a
-- text column mid-way, so such keys are dropped first and re-created as they were.
DO $$
DECLARE
    fk record;
    col record;
    recreate text[] := '{}';
    statement text;
BEGIN
    FOR fk IN
        SELECT DISTINCT c.conrelid::regclass AS tbl, c.conname, pg_get_constraintdef(c.oid) AS def
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.contype = 'f' AND a.attname = 'tenant_id'
          AND c.connamespace = current_schema()::regnamespace
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
        recreate := recreate || format('ALTER TABLE %s ADD CONSTRAINT %I %s',
                                       fk.tbl, fk.conname, fk.def);
    END LOOP;
    FOR col IN
        SELECT c.table_name
        FROM information_schema.columns c
        JOIN information_schema.tables t
          ON t.table_schema = c.table_schema AND t.table_name = c.table_name
        WHERE c.table_schema = current_schema() AND c.column_name = 'tenant_id'
          AND c.data_type = 'uuid' AND t.table_type = 'BASE TABLE'
        ORDER BY c.table_name
    LOOP
        EXECUTE format('ALTER TABLE %I ALTER COLUMN tenant_id TYPE text USING tenant_id::text',
                       col.table_name);
    END LOOP;
    FOREACH statement IN ARRAY recreate LOOP
        EXECUTE statement;
    END LOOP;
END
$$;
