"""Calendar arithmetic for billing periods."""

from __future__ import annotations

from datetime import UTC, datetime

from stripe_emulator.timeutil import add_interval


def _ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


def test_month_keeps_day_and_time() -> None:
    assert add_interval(_ts(2026, 3, 15, 8, 30), "month", 1) == _ts(2026, 4, 15, 8, 30)


def test_month_end_clamps_in_short_months_and_leap_years() -> None:
    assert add_interval(_ts(2026, 1, 31), "month", 1) == _ts(2026, 2, 28)
    assert add_interval(_ts(2028, 1, 31), "month", 1) == _ts(2028, 2, 29)
    assert add_interval(_ts(2026, 1, 31), "month", 3) == _ts(2026, 4, 30)


def test_month_crosses_year_and_year_interval() -> None:
    assert add_interval(_ts(2026, 12, 5), "month", 1) == _ts(2027, 1, 5)
    assert add_interval(_ts(2028, 2, 29), "year", 1) == _ts(2029, 2, 28)


def test_day_and_week_are_fixed_lengths() -> None:
    assert add_interval(100, "day", 2) == 100 + 2 * 86400
    assert add_interval(100, "week", 2) == 100 + 14 * 86400
