"""The writer: moves ledger usage to Stripe Billing Meters exactly once.

- `passes` — one pass over every tenant: resend pending outbox rows, then new deltas.
- `buckets` — one (tenant, customer) at a time: compute deltas, record, send, confirm.
- `outbox` — `push_state` and `meter_pushes`: what was sent and what is pending.
- `pending` — what "pending" means (one definition for the writer, its status, /metrics).
- `stream` — the v2 transport: pending rows of all customers, 100 per stream request.
- `identifiers` — meter-event identifiers and idempotency keys.
- `status` — the writer's counters and readiness check.
"""
