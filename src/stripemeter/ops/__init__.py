"""Operating the service: Prometheus metrics, the scrape-time gauges, log throttling,
the operator commands.

- `metrics` — the registry and the ingest and HTTP counters.
- `gauges` — the writer's and reconciler's state, read from Postgres at each scrape.
- `logthrottle` — one warning per condition per interval, with a count of the rest.
- `operator` — what `stripemeter reconcile` and `stripemeter summary` compute.
"""
