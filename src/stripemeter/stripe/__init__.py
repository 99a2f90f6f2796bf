"""The Stripe seam: the only package that imports the `stripe` SDK.

- `client` — builds the one `stripe.StripeClient` from settings (live keys refused).
- `gateway` — the calls this project makes, with its retry policy and typed results.
"""
