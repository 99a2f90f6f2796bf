"""Ingest: usage events in, exactly once.

- `validation` — the shape of an event and of a batch; every refusal names the field.
- `ledger` — the idempotent insert into `usage_events` and the event listing.
- `usage` — per-metric, per-customer totals over a window, read from the ledger.
"""
