"""The workers process: the writer and the reconciler on their intervals.

- `loop` — the loops, their shutdown, and the per-pass error handling.
- `state` — `worker_state`, the per-tenant status every process reads.
"""
