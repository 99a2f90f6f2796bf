"""The parity report: one page per tenant showing whether Stripe bills what was metered.

`model` holds what a report shows and the verdict rules; `collect` builds its sections
from the service's PostgreSQL (ledger buckets, the writer's pushes, reconciliation
reports, corrections); `render` writes `report.json` and one self-contained
`report.html` (charts by pygal, inlined). `stripemeter report` (in `stripemeter.cli`)
renders it for any tenant; the demo's
`python -m steps.report` adds what only the demo knows (invoice amounts, validate's
verdict, the scenarios' matrix) to the same model.
"""
