"""Bounded waits with progress: the demo's long pauses say what they wait for.

Each wait prints its state when it changes (at most every couple of seconds) and ends
with `  done: <what> after N.N s`, which `bench/demo_bench.py` reads to report where
the demo's wall time goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from steps._env import StepError

Probe = Callable[[], tuple[bool, str]]

PROGRESS_EVERY_S = 5.0


def wait_until(
    what: str,
    probe: Probe,
    *,
    timeout_s: float,
    first_interval_s: float = 0.1,
    max_interval_s: float = 1.0,
    hint: str = "",
) -> float:
    """Poll `probe` until it reports done; return the seconds waited.

    `probe` returns (done, a short description of what it saw). On timeout a `StepError`
    names the wait, the last observation and `hint`.
    """
    started = time.monotonic()
    interval = first_interval_s
    last_shown = ""
    last_print = started
    while True:
        done, seen = probe()
        now = time.monotonic()
        elapsed = now - started
        if done:
            print(f"  done: {what} after {elapsed:.1f} s", flush=True)
            return elapsed
        if elapsed >= timeout_s:
            extra = f"; {hint}" if hint else ""
            raise StepError(
                f"timed out after {timeout_s:.0f} s waiting for {what} (last seen: {seen}){extra}"
            )
        if seen != last_shown or now - last_print >= PROGRESS_EVERY_S:
            print(f"  waiting for {what}: {seen} ({elapsed:.0f} s)", flush=True)
            last_shown, last_print = seen, now
        time.sleep(min(interval, max(0.0, timeout_s - elapsed)))
        interval = min(interval * 1.5, max_interval_s)
