-- Corrections after close (owned by stripemeter.corrections): when a final period's
-- invoice billed a quantity other than the ledger's, the reconciler proposes one
-- correction per tenant x mapping x customer x period; applying it creates an invoice
-- item on the customer's next invoice (under-billed) or a credit note on the finalized
-- invoice (over-billed), with an Idempotency-Key derived from the row's id.
--
-- They replace `adjustments` (0001): its rows were suggestions nothing could apply, and
-- they lack what applying needs (invoice, line, customer, amount). A period that had one
-- keeps a post_close report without a correction, which the reconciler re-reconciles
-- (stripemeter.reconciler.engine), proposing its correction on the next run.
DROP TABLE adjustments;

CREATE TABLE corrections (
    id                   uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            text        NOT NULL,
    mapping_id           uuid        REFERENCES price_mappings (id) ON DELETE SET NULL,
    metric               text        NOT NULL,
    customer_ref         text        NOT NULL,
    stripe_customer_id   text        NOT NULL,
    subscription_id      text        NOT NULL,
    subscription_item_id text        NOT NULL,
    price_id             text        NOT NULL,
    period_start         timestamptz NOT NULL,
    period_end           timestamptz NOT NULL,
    -- the finalized invoice of the period, and its line billing the price
    invoice_id           text        NOT NULL,
    invoice_line_id      text,
    kind                 text        NOT NULL CHECK (kind IN ('invoice_item', 'credit_note')),
    -- whole units: ledger_quantity - billed_quantity, made positive; kind gives the sign
    quantity             numeric     NOT NULL CHECK (quantity > 0),
    -- per-unit prices: Stripe bills quantity x this; NULL (tiers, transform_quantity):
    -- the exact `amount` is sent instead
    unit_amount_decimal  numeric,
    amount               bigint      NOT NULL CHECK (amount >= 0),
    currency             text        NOT NULL,
    description          text        NOT NULL,
    ledger_quantity      numeric     NOT NULL,
    -- what the customer pays for the period before this correction: the invoice line
    -- quantity plus the corrections already applied
    billed_quantity      numeric     NOT NULL,
    status               text        NOT NULL DEFAULT 'proposed'
                         CHECK (status IN ('proposed', 'applied', 'superseded')),
    stripe_object_id     text,
    -- set before the first Stripe call of an apply: from then on the object may exist in
    -- Stripe, so the proposal is never superseded, only applied (again) to completion
    apply_started_at     timestamptz,
    created_at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    applied_at           timestamptz,
    superseded_at        timestamptz,
    CHECK ((status = 'applied') = (stripe_object_id IS NOT NULL))
);
-- One open proposal per item; superseded and applied rows are history.
CREATE UNIQUE INDEX corrections_one_proposal
    ON corrections (tenant_id, mapping_id, customer_ref, period_start) WHERE status = 'proposed';
CREATE INDEX corrections_by_tenant ON corrections (tenant_id, status, created_at DESC);
CREATE INDEX corrections_by_item ON corrections (mapping_id, customer_ref, period_start);

-- A report of a period settled by applied corrections: the correction last applied, its
-- Stripe object, and the quantity billed including the corrections (what the period's
-- drift is measured against).
ALTER TABLE reconciliation_reports
    ADD COLUMN correction_id uuid REFERENCES corrections (id) ON DELETE SET NULL,
    ADD COLUMN stripe_object_id text,
    ADD COLUMN corrected_quantity numeric;
