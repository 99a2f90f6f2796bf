"""Stripe webhooks: what an event asks of the service, its record, and the workers' part.

`receive` classifies a verified event and records it (one row per event id, the work
item in the same transaction, `NOTIFY stripemeter_work`); `work` is the workers' side:
a LISTEN connection that wakes on that notification and runs the queued items.
"""
