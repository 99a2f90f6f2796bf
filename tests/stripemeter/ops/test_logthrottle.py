"""`ThrottledLog`: the first occurrence per key at once, then one counted line per interval."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from stripemeter.ops.logthrottle import ThrottledLog


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tests.throttle"]


def test_first_occurrence_then_one_counted_line_per_interval(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="tests.throttle")
    throttled = ThrottledLog(logging.getLogger("tests.throttle"), interval_s=60, clock=clock)
    assert throttled.warning("missing", "no customer %s", "cus_0") is True
    for i in range(1, 10_000):
        clock.now += 0.001
        throttled.warning("missing", "no customer %s", f"cus_{i}")
    assert _lines(caplog) == ["no customer cus_0"]
    clock.now = 1000.0 + 60.0
    assert throttled.warning("missing", "no customer %s", "cus_x") is True
    assert _lines(caplog) == [
        "no customer cus_0",
        "no customer cus_x (repeated 9999 times in the last 60 s)",
    ]
    clock.now += 60.0
    throttled.warning("missing", "no customer %s", "cus_y")
    assert _lines(caplog)[-1] == "no customer cus_y"
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_keys_are_throttled_independently(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="tests.throttle")
    throttled = ThrottledLog(logging.getLogger("tests.throttle"), interval_s=10, clock=clock)
    for _ in range(3):
        throttled.error("a", "A failed")
        throttled.info("b", "B failed")
    assert _lines(caplog) == ["A failed", "B failed"]
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.INFO]


def test_flush_reports_held_back_counts_once(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="tests.throttle")
    throttled = ThrottledLog(logging.getLogger("tests.throttle"), interval_s=60, clock=clock)
    throttled.warning("db", "database down")
    throttled.warning("db", "database down")
    throttled.warning("db", "database down")
    assert throttled.flush() == 1
    assert throttled.flush() == 0
    assert _lines(caplog) == ["database down", "db: (repeated 2 times in the last 60 s)"]


def test_the_number_of_keys_is_bounded(clock: FakeClock) -> None:
    throttled = ThrottledLog(logging.getLogger("tests.throttle"), clock=clock, max_keys=50)
    for i in range(5000):
        throttled.warning(f"key-{i}", "boom")
    assert len(throttled._keys) == 50
    # The newest keys are the ones kept: a repeat of the last one is still held back.
    assert throttled.warning("key-4999", "boom") is False
    assert throttled.warning("key-0", "boom") is True


@pytest.mark.parametrize(("interval", "keys"), [(0, 10), (-1, 10), (10, 0)])
def test_bad_parameters_are_refused(interval: float, keys: int) -> None:
    with pytest.raises(ValueError):
        ThrottledLog(logging.getLogger("tests.throttle"), interval_s=interval, max_keys=keys)


def test_exc_info_goes_with_written_lines_only(
    caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    caplog.set_level(logging.INFO, logger="tests.throttle")
    throttled = ThrottledLog(logging.getLogger("tests.throttle"), interval_s=60, clock=clock)
    for _ in range(3):
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            throttled.error("boom", "step failed", exc_info=True)
    [record] = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_a_worker_step_failing_every_pass_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    from stripemeter.workers.loop import _loop

    caplog.set_level(logging.INFO, logger="stripemeter.workers.loop")
    stop = threading.Event()
    calls = 0

    def step() -> None:
        nonlocal calls
        calls += 1
        if calls >= 500:
            stop.set()
        raise RuntimeError(f"Stripe refused customer cus_{calls}")

    name = f"writer-{uuid.uuid4().hex[:8]}"
    _loop(name, 0.0, step, stop)
    failed = [r for r in caplog.records if "step failed" in r.getMessage()]
    assert calls == 500
    assert [r.getMessage() for r in failed] == [f"{name} step failed"]
    assert failed[0].exc_info is not None
