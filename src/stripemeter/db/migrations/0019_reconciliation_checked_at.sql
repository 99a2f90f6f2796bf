-- Reconciliation reports are written only when something changed (owned by
-- stripemeter.reconciler.engine): a run whose verdict and figures for a (mapping,
-- customer, period) equal its latest report's moves that report's `checked_at` instead
-- of inserting a copy, so the table grows with changes, not with runs. `checked_at` is
-- when the report was last found true; `created_at` stays when it was first made.
-- Existing reports were last checked when they were made.
ALTER TABLE reconciliation_reports ADD COLUMN checked_at timestamptz;
UPDATE reconciliation_reports SET checked_at = created_at;
ALTER TABLE reconciliation_reports
    ALTER COLUMN checked_at SET DEFAULT now(),
    ALTER COLUMN checked_at SET NOT NULL;
