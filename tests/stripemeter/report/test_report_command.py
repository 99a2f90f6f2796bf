"""`stripemeter report` as users run it: a real subprocess against a real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.stripemeter.report.world import write_world
from tests.stripemeter.test_cli import _no_traceback, home, run

__all__ = ["home"]  # the fixture, used by name


def test_report_writes_the_tenants_page_and_prints_its_path_last(
    home: Path, db_url: str, tmp_path: Path
) -> None:
    write_world(db_url)
    out = tmp_path / "out"
    result = run(
        home, "report", "--tenant", "acme", "--period", "2026-01", "--out", str(out),
        DATABASE_URL=db_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "verdict: DRIFT: 2 period(s)",
        f"json: {out / 'report.json'}",
        f"report: {out / 'report.html'}",
    ]
    body = json.loads((out / "report.json").read_text())
    assert [s["customerRef"] for s in body["sections"]] == ["cus-a", "cus-b"]
    assert 'id="verdict"' in (out / "report.html").read_text()


def test_a_tenant_without_data_for_the_month_is_one_line_exit_2(
    home: Path, db_url: str, tmp_path: Path
) -> None:
    write_world(db_url)
    result = run(
        home, "report", "--tenant", "acme", "--period", "2025-12", "--out", str(tmp_path),
        DATABASE_URL=db_url,
    )  # fmt: skip
    assert result.returncode == 2
    _no_traceback(result)
    assert result.stderr.splitlines() == [
        "error: no reconciliation report for tenant acme with a period starting in 2025-12: "
        "check --tenant and --period (`stripemeter summary --tenant acme` shows its month)"
    ]
    assert list(tmp_path.iterdir()) == []


def test_a_bad_period_or_tenant_is_refused_with_exit_2(home: Path, db_url: str) -> None:
    for args, says in [
        (["--tenant", "acme", "--period", "2026-13"], "--period must be a month as YYYY-MM"),
        (["--tenant= padded ", "--period", "2026-01"], "--tenant must be 1 to"),
        (["--tenant", "acme", "--period", "2026-01", "--colour", "x"], "unrecognized arguments"),
    ]:
        result = run(home, "report", *args, DATABASE_URL=db_url)
        assert result.returncode == 2, args
        _no_traceback(result)
        assert says in result.stderr.splitlines()[-1], result.stderr


def test_strict_tenant_ids_refuse_a_name_with_exit_2(home: Path, db_url: str) -> None:
    result = run(
        home, "report", "--tenant", "acme", "--period", "2026-01",
        DATABASE_URL=db_url, STRICT_TENANT_ID_UUID="1",
    )  # fmt: skip
    assert result.returncode == 2
    _no_traceback(result)
    [line] = result.stderr.splitlines()
    assert line.startswith("error: --tenant must be a UUID (STRICT_TENANT_ID_UUID is on)"), line
