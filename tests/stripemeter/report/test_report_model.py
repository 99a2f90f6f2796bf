"""The report model from a stored history: exact hourly figures, flags, verdicts, JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from stripemeter.report.collect import tenant_sections
from stripemeter.report.model import DRIFT, PARITY, Report, overall_verdict
from tests.stripemeter.report.world import (
    EXPECTED_JANUARY_HOURS,
    FEB,
    JAN,
    MAR,
    TENANT,
    write_world,
)

EPSILON = Decimal("0")


@pytest.fixture
def world(db_url: str) -> str:
    write_world(db_url)
    return db_url


def _january(db_url: str) -> list:  # type: ignore[type-arg]
    with psycopg.connect(db_url) as conn:
        return tenant_sections(conn, TENANT, EPSILON, (JAN, FEB))


def test_the_month_holds_the_latest_report_of_each_customer_period(world: str) -> None:
    sections = _january(world)
    assert [(s.customer_ref, s.reconciler_status) for s in sections] == [
        ("cus-a", "resolved"),
        ("cus-b", "post_close"),
    ]


def test_hours_show_ledger_beside_pushes_with_late_and_post_close_marked(world: str) -> None:
    cus_a = _january(world)[0]
    assert [h.to_json() for h in cus_a.hours] == EXPECTED_JANUARY_HOURS


def test_an_applied_correction_settles_the_under_billed_period(world: str) -> None:
    cus_a = _january(world)[0]
    body = cus_a.to_json(EPSILON)
    assert (body["ledger"], body["stripe"], body["invoice"]["quantity"]) == ("465", "425", "425")
    assert [c["id"] for c in body["corrections"]] == [cus_a.corrections[0].id]  # not superseded
    assert body["corrections"][0] | {"id": "x"} == {
        "id": "x",
        "kind": "invoice_item",
        "quantity": "40",
        "amount": 400,
        "currency": "usd",
        "status": "applied",
        "stripeObjectId": "ii_1",
    }
    assert (body["appliedCorrections"], body["billed"], body["driftAbs"]) == ("40", "465", "0")
    assert (body["verdict"], body["lateHours"], body["postCloseHours"]) == (PARITY, 1, 1)
    assert (body["periodEnd"], body["graceEnd"]) == ("2026-02-01T00:00:00Z", "2026-02-01T01:00:00Z")


def test_an_under_billed_period_without_correction_is_drift_and_so_is_the_report(
    world: str,
) -> None:
    sections = _january(world)
    cus_b = sections[1].to_json(EPSILON)
    assert (cus_b["billed"], cus_b["driftAbs"], cus_b["driftPct"]) == ("90", "10", "0.111111")
    assert cus_b["verdict"] == DRIFT
    assert "billed less than the ledger" in cus_b["cause"]
    assert overall_verdict(sections) == DRIFT
    assert overall_verdict(sections[:1]) == PARITY


def test_an_open_period_is_judged_on_stripes_meter(world: str) -> None:
    with psycopg.connect(world) as conn:
        (february,) = tenant_sections(conn, TENANT, EPSILON, (FEB, MAR))
    body = february.to_json(EPSILON)
    assert (body["invoice"], body["final"], body["billed"], body["verdict"]) == (
        None,
        False,
        "0",
        PARITY,
    )


def test_every_period_when_no_window_is_given(world: str) -> None:
    with psycopg.connect(world) as conn:
        sections = tenant_sections(conn, TENANT, EPSILON)
    assert [(s.customer_ref, s.period_start.month) for s in sections] == [
        ("cus-a", 1),
        ("cus-a", 2),
        ("cus-b", 1),
    ]


def test_report_json_carries_the_verdict_and_every_section(world: str) -> None:
    sections = _january(world)
    report = Report(
        title="t",
        source="service",
        generated_at=datetime(2026, 7, 1, tzinfo=UTC),
        epsilon=EPSILON,
        sections=sections,
        verdict=overall_verdict(sections),
    )
    body = report.to_json()
    assert (body["verdict"], body["generatedAt"], len(body["sections"])) == (
        "drift",
        "2026-07-01T00:00:00Z",
        2,
    )
