"""The demo steps' settings: the service's, plus what only the steps read.

Read like every settings object (the environment, then `.env`, then these defaults; see
`stripemeter.config.EnvSettings`), so a step run by hand from the checkout honours
`.env` exactly as the runners do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from stripemeter.config import EnvSettings, Settings
from stripemeter.errors import ConfigError
from stripemeter.stripe.client import REAL_STRIPE_BASE

# Waits against real Stripe take longer: its meter aggregation and clock advances can
# take minutes, the emulator's take seconds.
EMULATOR_WAIT_S = 120.0
REAL_STRIPE_WAIT_S = 600.0


class StepDebugSettings(EnvSettings):
    """`STEPS_TRACEBACK` on its own: the error handler reads it even when the other
    settings are what failed."""

    # Print the traceback of a failure after its one line (debugging).
    STEPS_TRACEBACK: bool = False


class StepSettings(Settings, StepDebugSettings):
    """Every variable a demo step reads."""

    DEMO_STATE_DIR: Path = Path("demo-state")
    # Upper bound of every single wait; unset: EMULATOR_WAIT_S or REAL_STRIPE_WAIT_S.
    DEMO_WAIT_TIMEOUT_S: Annotated[float, Field(gt=0)] | None = None

    @property
    def talks_to_real_stripe(self) -> bool:
        """A key and no other base than Stripe's own: api.stripe.com in test mode
        (docker compose names it, as an empty base means the emulator there)."""
        base = (self.STRIPE_API_BASE or "").rstrip("/")
        return bool(self.STRIPE_SECRET_KEY and base in ("", REAL_STRIPE_BASE))

    @property
    def wait_timeout_s(self) -> float:
        """`DEMO_WAIT_TIMEOUT_S`, else the default for the Stripe in use."""
        if self.DEMO_WAIT_TIMEOUT_S is not None:
            return self.DEMO_WAIT_TIMEOUT_S
        return REAL_STRIPE_WAIT_S if self.talks_to_real_stripe else EMULATOR_WAIT_S


def traceback_wanted() -> bool:
    """Whether a failure should also print its traceback (`STEPS_TRACEBACK=1`)."""
    try:
        return StepDebugSettings.load().STEPS_TRACEBACK
    except ConfigError:
        return False
