"""The reconciler: compares the ledger with what Stripe billed and reports drift.

- `engine` — one reconciliation over a tenant's mappings and periods, and `drift`.
- `runs` — queued and background runs (`reconciliation_runs`).
- `reports` — the latest report per item, summaries and CSV.
"""
