-- API key scopes (owned by stripemeter.auth): `ingest` (POST /v1/events/ingest), `read`
-- (GET usage, events, reconciliation, writer status, bindings) and `admin` (mappings,
-- customer bindings, reconciliation runs, per-tenant detail on /metrics).
-- Existing keys get all three scopes so nothing breaks for current users: they could do
-- everything before scopes existed. Keys made from now on default to ingest + read; the
-- admin scope is given only when asked for (`stripemeter api-keys create --scope admin`).
-- (0005 is customer_bindings, the other half of tenancy.)
ALTER TABLE api_keys
    ADD COLUMN scopes text[] NOT NULL DEFAULT ARRAY['ingest', 'read', 'admin']::text[];
ALTER TABLE api_keys ALTER COLUMN scopes SET DEFAULT ARRAY['ingest', 'read']::text[];
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_known
    CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['ingest', 'read', 'admin']::text[]);
