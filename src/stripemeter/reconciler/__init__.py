"""The reconciler: compares the ledger with what Stripe billed and reports drift.

- `engine` — one reconciliation over a tenant's mappings and periods.
- `drift` — drift_abs and drift_pct, the one definition.
- `runs` — queued and background runs (`reconciliation_runs`).
- `reports` — the latest report per item, summaries and CSV.
"""
