"""Mappings: which Stripe meter and customer a tenant's usage goes to.

- `store` — the `price_mappings` table: upsert, list, get, delete, and its JSON shape.
- `meters` — active mappings as objects, and resolving (or creating) a mapping's meter.
- `bindings` — `customer_bindings`: the only way a tenant's customerRef reaches a
  Stripe customer id.
"""
