"""Log a repeated error once per interval, with a count, instead of once per occurrence.

A failure that repeats for every customer or request (10,000 customerRefs Stripe does
not know, a database that is down during every scrape) used to write one line each:
53,384 lines in 60 s. `ThrottledLog` logs the first occurrence of a *key* at once,
then counts the repeats silently and, at the first occurrence after `interval_s` has
passed, logs the message again followed by `(repeated N times in the last 60 s)`.

Choose the key by the kind of failure (`"writer:customer_missing"`), not by the
customer, or every customer is a "first occurrence". Counts of a key that never
occurs again are not reported by a timer: the next occurrence, or `flush()`, does.
The number of keys is bounded (`max_keys`; the oldest is dropped), so client-chosen
text used as a key cannot grow memory without bound.

    throttled = ThrottledLog(logging.getLogger("stripemeter.writer.passes"), interval_s=60)
    throttled.warning("writer:customer_missing", "Stripe has no customer %s", ref)
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class _KeyState:
    """When the key was last logged and how many occurrences were held back since."""

    logged_at: float
    suppressed: int = 0


class ThrottledLog:
    """A logger wrapper that logs each key at most once per `interval_s` (thread-safe)."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = 60.0,
        *,
        clock: Clock = time.monotonic,
        max_keys: int = 1000,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.logger = logger
        self.interval_s = interval_s
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self._lock = threading.Lock()

    def debug(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """`log(logging.DEBUG, ...)`."""
        return self.log(logging.DEBUG, key, msg, *args, exc_info=exc_info)

    def info(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """`log(logging.INFO, ...)`."""
        return self.log(logging.INFO, key, msg, *args, exc_info=exc_info)

    def warning(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """`log(logging.WARNING, ...)`."""
        return self.log(logging.WARNING, key, msg, *args, exc_info=exc_info)

    def error(self, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """`log(logging.ERROR, ...)`."""
        return self.log(logging.ERROR, key, msg, *args, exc_info=exc_info)

    def log(self, level: int, key: str, msg: str, *args: object, exc_info: bool = False) -> bool:
        """Log `msg % args` now if `key` was not logged in the last interval; else count it.

        Returns True when a line was written. A line written after held-back
        occurrences ends with `(repeated N times in the last <interval> s)`, N
        counting the held-back occurrences. `exc_info` adds the current traceback
        to written lines only.
        """
        now = self._clock()
        with self._lock:
            state = self._keys.get(key)
            if state is not None and now - state.logged_at < self.interval_s:
                state.suppressed += 1
                return False
            suppressed = state.suppressed if state is not None else 0
            self._keys[key] = _KeyState(logged_at=now)
            self._keys.move_to_end(key)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        text = msg + self._suffix(suppressed) if suppressed else msg
        self.logger.log(level, text, *args, exc_info=exc_info)
        return True

    def flush(self, level: int = logging.WARNING) -> int:
        """Log one count line per key with held-back occurrences; return how many lines."""
        with self._lock:
            pending = [(key, s.suppressed) for key, s in self._keys.items() if s.suppressed]
            for key, _ in pending:
                self._keys[key].suppressed = 0
        for key, count in pending:
            self.logger.log(level, "%s:%s", key, self._suffix(count))
        return len(pending)

    def _suffix(self, count: int) -> str:
        times = "time" if count == 1 else "times"
        return f" (repeated {count} {times} in the last {self.interval_s:g} s)"
