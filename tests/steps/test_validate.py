"""`validate` against a real API, PostgreSQL and the emulator: every invoice of the
clock's customers and the open period, the one tolerance rule, a stale mapping named
with its fix, `--json` for scripts and `--assert` echoed.

Each test builds the Stripe side with `tests.support.stripe_world` (two customers on one
clock), writes the demo state the steps read, and runs the real step in-process
(`call_step`), so the step talks HTTP to the API and the SDK to the emulator.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from tests.steps.conftest import StepRunner
from tests.steps.demo_world import demo_world
from tests.support.stripe_world import (
    HOUR,
)

UNIT = 5  # cents: the world's price


def invoice_rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(customerRef, ledger, stripe meter, invoice quantity, amount, status) per invoice."""
    return [
        (
            row["customerRef"],
            row["ledger"],
            row["stripe"],
            row["invoiceQuantity"],
            row["invoiceAmount"],
            row["status"],
        )
        for row in document["invoices"]
    ]


def open_rows(document: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(customerRef, ledger, stripe meter, status) per open period."""
    return [
        (row["customerRef"], row["ledger"], row["stripe"], row["status"])
        for row in document["openPeriods"]
    ]


def test_every_invoice_of_every_customer_over_two_cycles_is_checked(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        a, b = demo.first, demo.second
        demo.send(a, demo.frozen - 3 * HOUR, 425, "a1")
        demo.send(b, demo.frozen - 2 * HOUR, 100, "b1")
        demo.drain()
        demo.close_period(demo.world.period_end)
        second_end = int(
            demo.world.client.v1.subscription_items.retrieve(demo.world.items[a]).current_period_end
        )
        now = demo.world.frozen_time()
        demo.send(a, now - HOUR, 30, "a2")
        demo.send(b, now - HOUR, 7, "b2")
        demo.drain()
        demo.close_period(second_end)

        result = demo.validate(call_step, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        document = json.loads(result.stdout)  # the one document, nothing else on stdout
        assert (document["verdict"], document["exitCode"]) == ("parity", 0)
        assert sorted(invoice_rows(document)) == sorted(
            [
                (a, "425", "425", "425", 425 * UNIT, "parity"),
                (b, "100", "100", "100", 100 * UNIT, "parity"),
                (a, "30", "30", "30", 30 * UNIT, "parity"),
                (b, "7", "7", "7", 7 * UNIT, "parity"),
            ]
        )
        assert sorted(open_rows(document)) == sorted(
            [(a, "0", "0", "parity"), (b, "0", "0", "parity")]
        )
        assert document["warnings"] == [] and document["problems"] == []

        # 9 units in the open period that Stripe holds and the ledger does not: real drift,
        # although every invoice is at parity.
        demo.rogue(b, demo.world.frozen_time() - 600, 9, "rogue-open")
        drifted = demo.validate(call_step)
        assert drifted.returncode == 2, drifted.stdout + drifted.stderr
        assert "verdict: DRIFT" in drifted.stdout
        assert (
            f"the open period of {b}" in drifted.stdout
            and "Stripe meter 9 != ledger 0 (drift 9)" in drifted.stdout
            and "usage reached Stripe without the writer" in drifted.stdout
        )
        logged = demo.last_log()
        assert (logged["verdict"], logged["exitCode"]) == ("drift", 2)
        assert (logged["tenantId"], logged["scenario"]) == (str(demo.world.tenant_id), "seed")
        # validate.log: every figure a JSON number, never the text --json shows.
        assert sorted(open_rows(logged)) == sorted([(a, 0, 0, "parity"), (b, 0, 9, "drift")])
        assert sorted(invoice_rows(logged)) == sorted(
            [
                (a, 425, 425, 425, 425 * UNIT, "parity"),
                (b, 100, 100, 100, 100 * UNIT, "parity"),
                (a, 30, 30, 30, 30 * UNIT, "parity"),
                (b, 7, 7, 7, 7 * UNIT, "parity"),
            ]
        )
        head = (logged["local"], logged["invoiceQuantity"], logged["drift_abs"])
        assert head == (30, 30, 0)  # the headline: invoice.json, the second cycle's
        assert logged["epsilon"] == 0.005


def test_usage_still_queued_is_pending_not_drift(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        demo.drain()
        demo.close_period(demo.world.period_end)
        now = demo.world.frozen_time()
        demo.send(demo.first, now - HOUR, 12, "queued")  # not drained: the writer has it

        queued = demo.validate(call_step, "--json")
        assert queued.returncode == 0, queued.stdout + queued.stderr
        document = json.loads(queued.stdout)
        assert document["pendingBuckets"] == 1
        (row,) = [r for r in document["openPeriods"] if r["customerRef"] == demo.first]
        assert (row["ledger"], row["stripe"], row["status"]) == ("12", "0", "pending")
        assert "1 bucket(s) to push" in row["cause"]
        assert document["verdict"] == "parity"

        demo.drain()
        pushed = json.loads(demo.validate(call_step, "--json").stdout)
        (row,) = [r for r in pushed["openPeriods"] if r["customerRef"] == demo.first]
        assert (row["ledger"], row["stripe"], row["status"]) == ("12", "12", "parity")
        assert pushed["pendingBuckets"] == 0


def test_drift_within_epsilon_is_parity_within_tolerance_and_epsilon_zero_is_exact(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 995, "a1")
        demo.drain()
        demo.rogue(demo.first, demo.frozen - 1800, 5, "rogue-1")  # invoiced 1000
        demo.close_period(demo.world.period_end)

        within = demo.validate(call_step, RECONCILIATION_EPSILON="0.005")
        assert within.returncode == 0, within.stdout + within.stderr
        assert "drift                  5 (drift_pct 0.005, epsilon 0.005, within tolerance)" in (
            within.stdout
        )
        assert (
            "verdict: PARITY: local 995, invoice quantity 1000, amount 5000, "
            "drift 5 within tolerance, invoice paid" in within.stdout
        )
        logged = demo.last_log()
        (row,) = [r for r in logged["invoices"] if r["customerRef"] == demo.first]
        assert (row["status"], row["tolerance"], row["drift_abs"], row["drift_pct"]) == (
            "parity",
            "within tolerance",
            5,
            0.005,
        )

        just_above = demo.validate(call_step, RECONCILIATION_EPSILON="0.004999")
        assert just_above.returncode == 2, just_above.stdout
        exact = demo.validate(call_step, "--json", RECONCILIATION_EPSILON="0")
        assert exact.returncode == 2, exact.stdout
        document = json.loads(exact.stdout)
        (row,) = [r for r in document["invoices"] if r["customerRef"] == demo.first]
        assert (row["status"], row["tolerance"], row["billed"], row["ledger"]) == (
            "drift",
            None,
            "1000",
            "995",
        )
        assert document["problems"] == [
            f"invoice {row['invoiceId']} of {demo.first} ({row['periodStart']} .. "
            f"{row['periodEnd']}): invoice quantity 1000 != ledger 995 (drift 5): Stripe "
            "billed more than the ledger (usage sent without the writer?): "
            "`stripemeter corrections apply` credits the proposed correction"
        ]


def test_deleted_mapping_is_named_and_no_stale_report_is_shown(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        demo.drain()
        demo.close_period(demo.world.period_end)
        assert demo.validate(call_step).returncode == 0  # reports made while mapped
        tenant = str(demo.world.tenant_id)
        demo.delete_mapping()
        demo.send(demo.first, demo.frozen - 2 * HOUR, 5, "after-delete")  # ledger 430

        result = demo.validate(call_step)
        assert result.returncode == 2, result.stdout + result.stderr
        out = result.stdout
        assert out.startswith(
            f"WARNING: tenant {tenant} has no active mapping for price {demo.world.price_id}"
        )
        assert "run `invoke setup` to map it again" in out
        # One set of figures, all of them from the ledger and Stripe: no stale report.
        assert "ledger total (local)   430" in out and "invoice quantity       425" in out
        assert "drift                  5 (drift_pct 0.011765, epsilon 0.005)" in out
        assert "Stripe (reconciled)" not in out and "425 / drift 0" not in out
        assert "invoice quantity 425 != ledger 430 (drift -5): no active mapping: nothing is" in out
        assert "verdict: DRIFT: local 430, invoice quantity 425, amount 2125, drift 5" in out
        logged = demo.last_log()
        assert (logged["mappingActive"], logged["summary"]) == (False, None)

        scripted = demo.validate(call_step, "--json")
        assert scripted.returncode == 2
        document = json.loads(scripted.stdout)  # the warning is in it, not beside it
        (warning,) = document["warnings"]
        assert warning.startswith(f"tenant {tenant} has no active mapping")
        (row,) = [r for r in document["invoices"] if r["customerRef"] == demo.first]
        assert (row["ledger"], row["invoiceQuantity"], row["status"]) == ("430", "425", "drift")
        assert row["cause"].startswith("no active mapping")


def test_post_close_usage_is_drift_until_its_correction_is_applied_then_resolved(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        demo.drain()
        demo.close_period(demo.world.period_end)
        demo.send(demo.first, demo.frozen - 2 * HOUR, 5, "late")  # after the invoice
        demo.drain()

        before = demo.validate(call_step, "--json")
        assert before.returncode == 2, before.stdout + before.stderr
        (row,) = [
            r for r in json.loads(before.stdout)["invoices"] if r["customerRef"] == demo.first
        ]
        assert (row["ledger"], row["invoiceQuantity"], row["status"]) == ("430", "425", "drift")
        assert "`stripemeter corrections apply` bills it" in row["cause"]

        tenant = str(demo.world.tenant_id)
        (proposed,) = requests.get(
            f"{demo.api}/v1/corrections", params={"tenantId": tenant}, timeout=10
        ).json()["data"]
        applied = requests.post(f"{demo.api}/v1/corrections/{proposed['id']}/apply", timeout=30)
        assert applied.status_code == 200, applied.text

        after = demo.validate(call_step, "--json")
        assert after.returncode == 0, after.stdout + after.stderr
        (row,) = [r for r in json.loads(after.stdout)["invoices"] if r["customerRef"] == demo.first]
        assert (row["ledger"], row["invoiceQuantity"], row["corrections"], row["billed"]) == (
            "430",
            "425",
            "5",
            "430",
        )
        assert (row["status"], row["correctionIds"]) == ("resolved", [proposed["id"]])


def test_assertions_are_echoed_with_their_results(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        demo.drain()
        demo.close_period(demo.world.period_end)
        passing = demo.validate(
            call_step,
            "--assert",
            ".validation.invoices | length == 2",
            "--assert",
            '.invoice.status == "paid"',
        )
        assert passing.returncode == 0, passing.stdout + passing.stderr
        assert "  assert .validation.invoices | length == 2: ok" in passing.stdout
        assert '  assert .invoice.status == "paid": ok' in passing.stdout

        failing = demo.validate(call_step, "--json", "--assert", ".invoice.amount_due == 1")
        assert failing.returncode == 2, failing.stdout + failing.stderr
        document = json.loads(failing.stdout)
        assert document["assertions"] == [
            {"expression": ".invoice.amount_due == 1", "passed": False, "gave": False}
        ]
        assert document["problems"] == ["assertion failed: .invoice.amount_due == 1 (gave false)"]
        assert document["verdict"] == "drift"


def test_a_draft_invoice_in_the_grace_window_is_pending(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        demo.drain()
        demo.close_period(demo.world.period_end)
        item = demo.world.client.v1.subscription_items.retrieve(demo.world.items[demo.first])
        demo.send(demo.first, demo.world.frozen_time() - HOUR, 30, "a2")
        demo.drain()
        # Past the second period's end, inside the hour before Stripe finalizes its invoice.
        demo.world.advance(int(item.current_period_end) + 600)

        result = demo.validate(call_step, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        rows = [r for r in json.loads(result.stdout)["invoices"] if r["customerRef"] == demo.first]
        assert [(r["invoiceStatus"], r["ledger"], r["status"]) for r in rows] == [
            ("paid", "425", "parity"),
            ("draft", "30", "pending"),
        ]
        assert rows[1]["cause"] == "the invoice is a draft; Stripe has not finalized it"


def test_a_max_mapping_is_checked_against_the_period_maximum(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path, formula="last", aggregation="max") as demo:
        for hours, value in ((5, 10), (3, 40), (1, 25)):  # sum 75, max 40
            demo.send(demo.first, demo.frozen - hours * HOUR, value, f"m{hours}")
        demo.drain()
        demo.close_period(demo.world.period_end)

        result = demo.validate(call_step, "--json")
        assert result.returncode == 0, result.stdout + result.stderr
        (row,) = [
            r for r in json.loads(result.stdout)["invoices"] if r["customerRef"] == demo.first
        ]
        assert (row["ledger"], row["stripe"], row["invoiceQuantity"], row["status"]) == (
            "40",
            "40",
            "40",
            "parity",
        )
        assert row["invoiceAmount"] == 40 * UNIT


def test_json_mode_errors_print_nothing_on_stdout_and_one_line_on_stderr(
    call_step: StepRunner, tmp_path: Path
) -> None:
    result = call_step("validate", "--json", env={"DEMO_STATE_DIR": str(tmp_path / "none")})
    assert (result.returncode, result.stdout) == (1, "")
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("validate: error: no demo state at") and "invoke setup" in line
