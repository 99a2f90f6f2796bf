-- Which Stripe customer a tenant's customerRef is billed as (owned by stripemeter.bindings).
-- All tenants share one Stripe account, so a customerRef is never taken as a Stripe
-- customer id on its own word: the writer pushes only to customers bound to the tenant,
-- and one Stripe customer belongs to at most one tenant.
CREATE TABLE customer_bindings (
    tenant_id           uuid        NOT NULL,
    customer_ref        text        NOT NULL,
    stripe_customer_id  text        NOT NULL UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    verified_at         timestamptz,
    PRIMARY KEY (tenant_id, customer_ref)
);
