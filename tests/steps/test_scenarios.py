"""Every built-in scenario against a real stack, checked by the oracle on every invoice.

One private stack (embedded PostgreSQL, emulator, API + workers) serves the module, as
in test_demo_e2e.py. `invoke scenarios` runs the headline pair; the other scenarios go
through the same runner in-process (`LocalRunner.run_step("scenario", ...)`), several
per call, and their `scenarios.json` is read back to check the cells that matter.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.steps.conftest import step_environment
from tests.steps.test_demo_e2e import Demo
from tests.support.servers import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stack() -> Iterator[Demo]:
    # A short path: the embedded PostgreSQL's unix socket lives under it (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="smscn-", dir="/tmp"))
    emulator_port = free_port()
    env = step_environment(
        {
            "STRIPEMETER_HOME": str(root / "h"),
            "DEMO_STATE_DIR": str(root / "state"),
            "API_HOST": f"127.0.0.1:{free_port()}",
            "STRIPE_EMULATOR_PORT": str(emulator_port),
            "STRIPE_EMULATOR_ADVANCE_DELAY_MS": "50",
            "DEMO_WAIT_TIMEOUT_S": "30",
        }
    )
    env.pop("STRIPEMETER_RUNNER", None)
    demo = Demo(root=root, env=env, emulator_base=f"http://127.0.0.1:{emulator_port}")
    try:
        yield demo
    finally:
        demo.runner().down()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def demo(stack: Demo, capfd: pytest.CaptureFixture[str]) -> Demo:
    stack.capfd = capfd
    return stack


def result_of(demo: Demo) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((demo.state_dir / "scenarios.json").read_text())
    return data


def cells(result: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    [found] = [s for s in result["scenarios"] if s["name"] == scenario]
    cells: list[dict[str, Any]] = found["cells"]
    return cells


def cell(result: dict[str, Any], scenario: str, customer: str, cycle: int) -> dict[str, Any]:
    [found] = [
        c for c in cells(result, scenario) if (c["customer"], c["cycle"]) == (customer, cycle)
    ]
    return found


def assert_parity(demo: Demo, *names: str) -> dict[str, Any]:
    args = [arg for name in names for arg in ("--only", name)]
    ran = demo.step("scenario", *args)
    result = result_of(demo)
    drifting = [c for s in result["scenarios"] for c in s["cells"] if c["verdict"] != "parity"]
    errors = [(s["name"], s["error"]) for s in result["scenarios"] if s["error"]]
    assert (ran.code, errors, drifting) == (0, [], []), ran.stdout[-4000:] + ran.stderr
    assert [s["name"] for s in result["scenarios"]] == list(names)
    return result


def test_invoke_scenarios_proves_seed_and_multi_customer_on_every_invoice(stack: Demo) -> None:
    done = stack.invoke("scenarios", "--only", "seed,multi-customer")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    assert "verdict: PARITY: 2 scenario(s)" in done.stdout
    assert done.stdout.splitlines()[-1] == f"report: {stack.state_dir / 'report.html'}"
    matrix = [line.split() for line in done.stdout.splitlines() if line.startswith("seed ")]
    # scenario customer invoice oracle ledger stripe totals correction verdict
    assert matrix == [
        ["seed", "demo", "0", "0/0", "-", "0/0", "0/0", "-", "PARITY"],
        ["seed", "demo", "1", "425/2125", "425", "425/2125", "2125/2125", "-", "PARITY"],
    ]
    result = result_of(stack)
    assert result["exitCode"] == 0
    seed = cell(result, "seed", "demo", 1)
    assert (seed["invoiceStatus"], seed["reportStatus"], seed["ledger"]) == ("paid", "ok", "425")
    customers = {(c["customer"], c["cycle"]): c for c in cells(result, "multi-customer")}
    assert sorted(customers) == [(n, k) for n in ("alice", "bob", "carol") for k in (0, 1)]
    ids = {c["stripeCustomerId"] for c in customers.values()}
    assert len(ids) == 3  # three customers, each billed its own usage
    assert [customers[(n, 1)]["stripe"]["quantity"] for n in ("alice", "bob", "carol")] == [
        customers[(n, 1)]["oracle"]["quantity"] for n in ("alice", "bob", "carol")
    ]


def test_multi_cycle_bills_every_period_and_the_meters_and_tiers_bill_as_stripe_does(
    demo: Demo,
) -> None:
    result = assert_parity(demo, "multi-cycle", "max-last", "last", "tiered", "volume")
    cycles = [c["cycle"] for c in cells(result, "multi-cycle")]
    assert cycles == [0, 1, 2, 3]
    periods = [c["periodStart"] for c in cells(result, "multi-cycle")[1:]]
    assert len(set(periods)) == 3
    large = cell(result, "tiered", "large", 1)["stripe"]
    assert (large["quantity"], large["amount"]) == (391, 1882)  # 50x10 + 150x6 + 100 + 191x2


def test_post_close_usage_is_one_invoice_item_and_stripes_extra_one_credit_note(
    demo: Demo,
) -> None:
    result = assert_parity(demo, "post-close-under", "post-close-over")
    closed = cell(result, "post-close-under", "under", 1)
    assert (closed["stripe"]["quantity"], closed["ledger"]) == (114, "134")
    assert closed["reportStatus"] == "resolved"
    following = cell(result, "post-close-under", "under", 2)
    assert following["stripe"]["invoiceItems"] == [{"quantity": 20, "amount": 140}]
    assert following["corrections"] == ["invoice_item +20 = 140 (applied)"]
    over = cell(result, "post-close-over", "over", 1)
    assert over["stripe"]["creditNotes"] == [{"quantity": 15, "amount": 135}]
    assert over["corrections"] == ["credit_note -15 = 135 (applied)"]
    assert over["reportStatus"] == "resolved"
    # The runner applied every correction a second time: nothing new, nothing changed.
    assert [s["problems"] for s in result["scenarios"]] == [[], []]


def test_grace_window_usage_lands_on_the_closing_invoice(stack: Demo) -> None:
    done = stack.invoke("demo", "--scenario", "grace-window")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    first = cell(result_of(stack), "grace-window", "grace", 1)
    assert first["verdict"] == "parity"
    assert first["corrections"] == []  # on invoice 1 itself, not corrected on invoice 2


def test_json_output_is_the_document_alone_on_stdout(demo: Demo) -> None:
    ran = demo.step("scenario", "--only", "seed", "--json")
    assert ran.code == 0, ran.stdout[-2000:] + ran.stderr
    document = json.loads(ran.stdout)
    assert document == result_of(demo)
    assert (document["verdict"], document["exitCode"]) == ("parity", 0)
    assert "[seed] cycle 1/1: past finalization" in ran.stderr


def test_fractional_usage_bills_the_floor_of_each_period_total(demo: Demo) -> None:
    result = assert_parity(demo, "fractional")
    first = cell(result, "fractional", "frac", 1)
    assert (first["stripe"]["quantity"], first["ledger"]) == (11, "11.71")


def test_a_subscription_cancelled_at_period_end_ends_with_its_final_invoice_at_parity(
    demo: Demo,
) -> None:
    result = assert_parity(demo, "cancel-at-period-end")
    assert [c["cycle"] for c in cells(result, "cancel-at-period-end")] == [0, 1, 0, 1, 2]


def test_an_unknown_scenario_is_refused_in_one_line_before_anything_runs(demo: Demo) -> None:
    (demo.state_dir / "scenarios.json").unlink(missing_ok=True)
    refused = demo.invoke("demo", "--scenario", "nope")
    assert refused.returncode == 1
    [line] = refused.stderr.strip().splitlines()
    assert line.startswith("scenario: error: no scenario 'nope' in "), line
    assert "(known: cancel-at-period-end, fractional," in line
    assert not (demo.state_dir / "scenarios.json").exists()
    elsewhere = demo.step("scenario", "--dir", str(demo.root / "none"))
    assert elsewhere.code == 1
    assert elsewhere.stderr.strip() == (
        f"scenario: error: no scenario directory at {demo.root / 'none'}: scenarios run from "
        "a checkout (`invoke scenarios`, either runner), or pass --dir"
    )
