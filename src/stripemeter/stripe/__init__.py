"""The Stripe seam: the only package that imports the `stripe` SDK.

- `client` — the one factory from settings (`gateway_from_settings`), the bare
  `make_client` under it, and the one rule of which keys may be used (live keys only
  for the service in live mode, `resolve_stripe_target`).
- `gateway` — the calls this project makes, with its retry policy and typed results.
- `stream` — the v2 meter event stream under the gateway: session tokens, batched sends.

`tests/stripemeter/stripe/test_only_the_seam_imports_the_sdk.py` keeps it the only one.
"""
