"""Pure pieces of the writer and reconciler: identifiers, time windows, drift, output."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from stripemeter.periods import (
    METER_EVENT_MAX_AGE_S,
    ceil_minute,
    meter_event_timestamp,
    parse_month,
    too_old,
)
from stripemeter.reconciler.drift import drift
from stripemeter.reconciler.reports import number, summarize, to_csv
from stripemeter.writer.identifiers import idempotency_key, outbox_identifier
from stripemeter.writer.passes import floor_units

TENANT = "7b0d4a35-4d7e-4b8a-9d36-8f3f8f0f9c11"
HOUR_START = datetime(2026, 11, 23, 10, tzinfo=UTC)


def ident(seq: int, **change: str) -> str:
    args = {"metric": "api_calls", "event_name": "api_calls", "customer_ref": "cus_1", **change}
    return outbox_identifier(
        TENANT, args["metric"], args["event_name"], args["customer_ref"], HOUR_START, seq
    )


def test_identifier_names_one_outbox_row_and_fits_stripes_limit() -> None:
    assert ident(7) == ident(7)  # a re-send of row 7 carries the same identifier
    assert ident(7) != ident(8)  # a new row (new units) never reuses one
    assert ident(7) != ident(7, customer_ref="cus_2")
    assert ident(7) != ident(7, metric="other")
    assert ident(7) != ident(7, event_name="other_meter")
    assert ident(7).startswith("smp_7_")
    assert len(ident(2**63 - 1)) <= 100  # the largest bigint sequence still fits


def test_idempotency_key_covers_parameters_and_retry_tag() -> None:
    base = idempotency_key("smw_x", 1000, 5)
    assert base == idempotency_key("smw_x", 1000, 5)
    assert base != idempotency_key("smw_x", 1060, 5)
    assert base != idempotency_key("smw_x", 1000, 6)
    assert base != idempotency_key("smw_x", 1000, 5, "r3")
    assert len(base) <= 255


def test_meter_timestamps_stay_inside_the_bucket_and_stripes_window() -> None:
    hour = 1_795_000_000 - 1_795_000_000 % 3600
    now = hour + 10 * 3600
    assert meter_event_timestamp(hour, 0, frozen_time=None, real_now=now) == hour
    assert meter_event_timestamp(hour, 2, frozen_time=None, real_now=now) == hour + 2
    assert meter_event_timestamp(hour, 99_999, frozen_time=None, real_now=now) == hour + 3599
    # Clock inside the bucket: moved back to the clock time; clock before it: wait.
    assert meter_event_timestamp(hour, 5, frozen_time=hour + 3, real_now=now) == hour + 3
    assert meter_event_timestamp(hour, 0, frozen_time=hour - 1, real_now=now) is None
    # Never more than five minutes ahead of real time.
    assert meter_event_timestamp(hour, 0, frozen_time=None, real_now=hour - 301) is None
    assert too_old(now - METER_EVENT_MAX_AGE_S - 1, now)
    assert not too_old(now - METER_EVENT_MAX_AGE_S, now)


def test_minute_alignment_and_months() -> None:
    assert ceil_minute(120) == 120
    assert ceil_minute(121) == 180
    assert parse_month("2026-12", "periodStart") == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValueError, match="periodEnd must be a month as YYYY-MM"):
        parse_month("2026-13", "periodEnd")


def test_whole_units_floor_fractions() -> None:
    assert floor_units(Decimal("2.999999")) == 2
    assert floor_units(Decimal("3")) == 3
    assert floor_units(None) == 0


def test_drift_is_relative_to_stripe_and_one_when_stripe_is_zero() -> None:
    assert drift(Decimal(425), Decimal(425)) == drift(Decimal(0), Decimal(0))
    assert drift(Decimal(425), Decimal(425)).drift_pct == 0
    assert drift(Decimal(432), Decimal(425)).drift_abs == 7
    assert drift(Decimal(418), Decimal(425)).drift_pct == Decimal("0.016471")
    assert drift(Decimal(5), Decimal(0)).drift_pct == 1


def report(metric: str, local: int, stripe: int, invoice: int | None = None) -> dict[str, object]:
    compared = invoice if invoice is not None else stripe
    return {
        "metric": metric,
        "local_total": Decimal(local),
        "stripe_total": Decimal(stripe),
        "invoice_quantity": None if invoice is None else Decimal(invoice),
        "final": invoice is not None,
        "drift_abs": abs(Decimal(local - compared)),
    }


def test_summary_adds_item_drifts_and_uses_the_invoice_for_final_periods() -> None:
    reports = [
        report("api_calls", 100, 999, invoice=100),  # final: the invoice is what counts
        report("api_calls", 50, 40),  # open period: the meter summary
        report("storage", 10, 13),
    ]
    summary = summarize(reports)  # type: ignore[arg-type]
    api, storage = summary["perMetric"]
    assert api == {
        "metric": "api_calls",
        "local": 150,
        "stripe": 140,
        "drift_abs": 10,
        "drift_pct": 0.071429,
        "items": 2,
    }
    assert storage["drift_abs"] == 3
    assert summary["overall"] == {
        "local": 160,
        "stripe": 153,
        "drift_abs": 13,
        "drift_pct": 0.084967,
        "metrics": 2,
        "items": 3,
    }
    csv_lines = to_csv(summary).splitlines()
    assert csv_lines == [
        "metric,local,stripe,drift_abs,drift_pct,items",
        "api_calls,150,140,10,0.071429,2",
        "storage,10,13,3,0.230769,1",
        "TOTAL,160,153,13,0.084967,3",
    ]


def test_numbers_are_exact_or_strings() -> None:
    assert number(Decimal("425.000")) == 425
    assert number(Decimal("0.5")) == 0.5
    assert number(Decimal("12345678901234567890.123456")) == "12345678901234567890.123456"
