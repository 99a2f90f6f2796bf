"""The writer: moves ledger usage to Stripe Billing Meters exactly once.

- `passes` — one pass over every tenant: resend pending outbox rows, then new deltas.
- `buckets` — one (tenant, customer) at a time: compute deltas, record, send, confirm.
- `outbox` — `push_state` and `meter_pushes`: what was sent and what is pending.
- `identifiers` — meter-event identifiers and idempotency keys.
- `status` — what the writer's state looks like to `/v1/writer/status` and `/metrics`.
"""
