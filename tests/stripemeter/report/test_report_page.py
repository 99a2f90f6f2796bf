"""The rendered page: self-contained HTML with the verdict on top and one chart per
period; in headless chromium the verdict is visible and each chart has its 4 series."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from stripemeter.report.collect import tenant_sections
from stripemeter.report.model import Report, overall_verdict
from stripemeter.report.render import SERIES, render_html, write_report
from tests.stripemeter.report.browser import open_page
from tests.stripemeter.report.world import FEB, JAN, TENANT, write_world


@pytest.fixture
def report(db_url: str) -> Report:
    write_world(db_url)
    with psycopg.connect(db_url) as conn:
        sections = tenant_sections(conn, TENANT, Decimal(0), (JAN, FEB))
    return Report(
        title="Parity report: tenant acme, 2026-01",
        source="service",
        generated_at=datetime(2026, 7, 1, tzinfo=UTC),
        epsilon=Decimal(0),
        sections=sections,
        verdict=overall_verdict(sections),
    )


def test_the_page_needs_no_network_and_runs_no_script(report: Report) -> None:
    page = render_html(report)
    assert "<script" not in page
    assert re.findall(r"(?:src|href)=", page) == []
    urls = set(re.findall(r"https?://[^\s\"'<>]+", page))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg"') == 2


def test_the_verdict_is_the_first_thing_on_the_page(report: Report) -> None:
    page = render_html(report)
    assert '<div id="verdict" class="verdict verdict-drift">DRIFT</div>' in page
    assert page.index('id="verdict"') < page.index("<section")


def test_json_and_html_are_written_side_by_side(report: Report, tmp_path: Path) -> None:
    json_path, html_path = write_report(report, tmp_path / "out")
    assert (json_path.name, html_path.name) == ("report.json", "report.html")
    assert json.loads(json_path.read_text())["verdict"] == "drift"


def test_chromium_shows_the_verdict_and_each_chart_with_four_series(
    report: Report, tmp_path: Path
) -> None:
    _, html_path = write_report(report, tmp_path)
    with open_page(html_path.as_uri()) as page:
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        verdict = page.locator("#verdict")
        assert verdict.is_visible()
        assert verdict.inner_text() == "DRIFT"
        charts = page.locator("svg.pygal-chart")
        assert charts.count() == 2
        series = page.evaluate(
            """() => [...document.querySelectorAll('svg.pygal-chart')].map(svg => ({
                series: svg.querySelectorAll(
                  'g.plot:not(.overlay):not(.text-overlay) > g.series').length,
                legends: [...svg.querySelectorAll('g.legends > g > text')]
                  .map(t => t.textContent),
                ledgerBars: svg.querySelectorAll(
                  'g.plot:not(.overlay):not(.text-overlay) > g.serie-0 rect').length,
                height: svg.getBoundingClientRect().height,
              }))"""
        )
        assert [s["series"] for s in series] == [4, 4]
        assert [s["legends"] for s in series] == [list(SERIES), list(SERIES)]
        assert [s["ledgerBars"] for s in series] == [3, 1]  # cus-a 3 hours, cus-b 1
        assert all(s["height"] > 100 for s in series)
        badges = page.locator("section.period .badge").all_inner_texts()
        assert badges == ["PARITY", "DRIFT"]
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_a_missing_browser_fails_when_required_and_skips_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.stripemeter.report import browser

    monkeypatch.setattr(browser, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("STRIPEMETER_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="STRIPEMETER_REQUIRE_BROWSER=1"):
        browser.require_chromium()
    monkeypatch.delenv("STRIPEMETER_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        browser.require_chromium()
