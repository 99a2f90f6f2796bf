"""Operating the service: Prometheus metrics and log throttling.

- `metrics` — the registry and the ingest and HTTP counters.
- `logthrottle` — one warning per condition per interval, with a count of the rest.
"""
