"""Corrections after close: fixing what a final invoice billed wrong, in Stripe.

Stripe never changes a finalized invoice, and meter event adjustments only cancel events
of the last 24 hours. When a final period's invoice billed a quantity other than the
ledger's, the reconciler proposes a correction here, and applying it uses Stripe's own
tools: an invoice item on the customer's next invoice (under-billed) or a credit note on
the finalized invoice by line quantity (over-billed).

- `pricing` — what a quantity costs under a price's terms (per unit, tiers, transform),
  and so the amount of a correction.
- `store` — the `corrections` table: proposals (one open per tenant x mapping x
  customer x period; a changed difference supersedes it), reads, the applied history
  the reconciler counts as billed.
- `apply` — applying one correction (or all of a tenant's) to Stripe exactly once: a
  deterministic Idempotency-Key `stripemeter-correction-<id>`, a lookup by metadata
  before creating, and the period's report made `resolved` with the Stripe object id.
"""
