"""stripe_emulator: a stateful, offline Stripe for the stripemeter demo and tests.

Public surface:
- `stripe_emulator.app.create_app(*, advance_delay_s=0.5)` -> ASGI app (one in-memory account)
- `stripe-emulator [--host 127.0.0.1] [--port DEFAULT_PORT] [--advance-delay-ms N]` (cli.main)
- control endpoints `/_emulator/{health,reset,faults,state}` (see control.py)

Behaviour follows ../shared/reference/stripe-api-facts.md for API version
`2026-10-28.endive`; facts marked [inferred] there are marked the same way here.
"""

# The emulator's port unless told otherwise; the one place 12111 is written.
DEFAULT_PORT = 12111
