"""The Test Clocks parity demo, one module per step: `python -m steps.<name>`.

    setup          the Stripe side on a Test Clock + the price mapping   (seed: run.sh)
    send_usage     normal, duplicate and late usage through the API      (seed: send-usage.sh)
    advance_clock  drain the writer, advance past the period end         (seed: advance-clock.sh)
    validate       reconcile; check every invoice and the open period    (seed: validate.sh)
    cleanup        delete the Test Clock and the price mapping           (seed: cleanup.sh)
    scenario       run scenarios/*.toml, every invoice against the oracle (issue 14)

Steps are configured only by their settings (`steps._settings.StepSettings`: the
environment, then `.env`, then defaults — `API_HOST`, `DATABASE_URL`, `STRIPE_SECRET_KEY`,
`STRIPE_API_BASE`, `RECONCILIATION_EPSILON`, `DEMO_STATE_DIR`, `DEMO_WAIT_TIMEOUT_S`,
`STEPS_TRACEBACK`), so they run the same on the host and in a container, and they share
their state through files in `DEMO_STATE_DIR`. Every failure ends in one line on stderr
and a non-zero exit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import TracebackType

EXIT_INTERRUPTED = 130


def _interrupted_hook(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """Ctrl-C before `steps._env.main` took over (while a step's modules still import):
    one line and exit 130, like an interrupt during the step; anything else as before."""
    if issubclass(kind, KeyboardInterrupt):
        name = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else "step"
        sys.stderr.write(f"{name}: error: interrupted\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    _previous_hook(kind, value, tb)


_previous_hook = sys.excepthook
if sys.argv[:1] == ["-m"]:  # `python -m steps.<name>` is importing this package
    sys.excepthook = _interrupted_hook
