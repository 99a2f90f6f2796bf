"""The rule every bench keeps: test mode only, whatever `STRIPEMETER_LIVE` says.

Each bench calls `refuse_live_keys(prog)` first thing: a live Stripe key in the
environment or `.env` ends it with one line and exit 1, before anything starts (the
benches run on the emulator, but a live key lying around must never reach a process
they start).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stripemeter.config import load_settings
from stripemeter.errors import StripemeterError
from stripemeter.stripe.client import refuse_live_key


def refuse_live_keys(prog: str) -> None:
    """Exit 1 with `prog: error: ...` when the configured Stripe key is a live key."""
    try:
        refuse_live_key(load_settings().STRIPE_SECRET_KEY)
    except StripemeterError as exc:
        print(f"{prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        sys.exit(1)
