"""The parity demo end to end, as a user runs it: `invoke demo`, then single steps.

One stack (embedded PostgreSQL, emulator, API + workers) runs in a private temp dir
with its own STRIPEMETER_HOME, free ports and a short emulator advance delay, shared
by the tests here. `invoke` runs the headline demo; later steps go through the same
runner in-process (`LocalRunner.run_step`), which saves an `invoke` start per step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stripemeter.stripe.client import make_client
from stripemeter_dev.local import LocalRunner
from tests.steps.conftest import REPO_ROOT, step_environment
from tests.support.servers import free_port

pytestmark = pytest.mark.slow

PARITY = "verdict: PARITY: local 425, invoice quantity 425, amount 2125, drift 0, invoice paid"


@dataclass
class Step:
    """What one step printed and how it exited."""

    code: int
    stdout: str
    stderr: str


@dataclass
class Demo:
    """A private demo installation: where it lives and how to run tasks and steps in it."""

    root: Path
    env: dict[str, str]
    emulator_base: str
    capfd: pytest.CaptureFixture[str] | None = None

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    def invoke(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `invoke <args>` against the repository's tasks.py, in the demo's dir."""
        invoke = Path(sys.executable).parent / "invoke"
        return subprocess.run(
            [str(invoke), "-r", str(REPO_ROOT), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def runner(self, **extra_env: str) -> LocalRunner:
        """The local runner as `invoke` would build it from this demo's environment."""
        environ = {**self.env, **extra_env}
        return LocalRunner(environ=environ, out=sys.stdout)

    def step(self, name: str, *args: str, **extra_env: str) -> Step:
        """Run one step through the runner, capturing what it printed."""
        assert self.capfd is not None
        self.capfd.readouterr()
        code = self.runner(**extra_env).run_step(name, args)
        out, err = self.capfd.readouterr()
        return Step(code, out, err)

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / ".state.json").read_text())
        return data

    def invoice(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state_dir / "invoice.json").read_text())
        return data

    def last_validation(self) -> dict[str, Any]:
        lines = (self.state_dir / "validate.log").read_text().splitlines()
        data: dict[str, Any] = json.loads(lines[-1])
        return data


@pytest.fixture(scope="module")
def installation() -> Iterator[Demo]:
    # A short path: the embedded PostgreSQL's unix socket lives under it (108-byte limit).
    root = Path(tempfile.mkdtemp(prefix="smdemo-", dir="/tmp"))
    emulator_port = free_port()
    env = step_environment(
        {
            "STRIPEMETER_HOME": str(root / "h"),
            "DEMO_STATE_DIR": str(root / "state"),
            "API_HOST": f"127.0.0.1:{free_port()}",
            "STRIPE_EMULATOR_PORT": str(emulator_port),
            "STRIPE_EMULATOR_ADVANCE_DELAY_MS": "50",
            "DEMO_WAIT_TIMEOUT_S": "60",
        }
    )
    env.pop("STRIPEMETER_RUNNER", None)
    demo = Demo(root=root, env=env, emulator_base=f"http://127.0.0.1:{emulator_port}")
    try:
        yield demo
    finally:
        demo.runner().down()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class TwoRuns:
    first: subprocess.CompletedProcess[str]
    first_state: dict[str, Any]
    first_invoice: dict[str, Any]
    first_validation: dict[str, Any]
    kept: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def two_runs(installation: Demo) -> TwoRuns:
    """`invoke demo`, then `invoke demo --keep` right after: the user's two runs."""
    first = installation.invoke("demo")
    assert first.returncode == 0, first.stdout + first.stderr
    snapshot = (installation.state(), installation.invoice(), installation.last_validation())
    kept = installation.invoke("demo", "--keep")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    return TwoRuns(first, *snapshot, kept)


@pytest.fixture
def demo(installation: Demo, capfd: pytest.CaptureFixture[str]) -> Demo:
    installation.capfd = capfd
    return installation


def price_line(invoice: dict[str, Any], price_id: str) -> dict[str, Any]:
    lines = [
        line
        for line in invoice["lines"]["data"]
        if line["pricing"]["price_details"]["price"] == price_id
    ]
    assert len(lines) == 1, invoice["lines"]
    return lines[0]


def test_demo_proves_invoice_parity_and_leaves_its_state_files(
    two_runs: TwoRuns, installation: Demo
) -> None:
    assert PARITY in two_runs.first.stdout
    # It ends with the parity report's page (steps.report), its path the last line.
    report = two_runs.first.stdout.splitlines()[-1]
    assert report == f"report: {installation.state_dir / 'report.html'}"
    assert (installation.state_dir / "report.json").is_file()
    state, invoice = two_runs.first_state, two_runs.first_invoice
    assert state["cleanedUp"] is True  # cleanup ran (no --keep)
    assert invoice["status"] == "paid"
    assert invoice["billing_reason"] == "subscription_cycle"
    assert invoice["amount_due"] == 2125
    line = price_line(invoice, state["priceId"])
    assert (line["quantity"], line["amount"]) == (425, 2125)
    assert line["period"] == {"start": state["periodStart"], "end": state["periodEnd"]}
    validation = two_runs.first_validation
    assert validation["verdict"] == "parity" and validation["exitCode"] == 0
    assert (validation["local"], validation["invoiceQuantity"]) == (425, 425)
    assert (validation["scenario"], validation["tenantId"]) == ("seed", state["tenantId"])

    # The seed's batch: two accepted, the repeated key a duplicate, the late one accepted.
    table = [line.split() for line in two_runs.first.stdout.splitlines() if "demo-evt-" in line]
    assert [(row[0], row[1], row[-1]) for row in table] == [
        ("demo-evt-1", "100", "accepted"),
        ("demo-evt-2", "250", "accepted"),
        ("demo-evt-1", "100", "duplicate"),
        ("demo-evt-late", "75", "accepted"),
    ]


def test_demo_ends_by_saying_what_still_runs_and_how_to_stop_it(
    two_runs: TwoRuns, demo: Demo
) -> None:
    api = f"http://{demo.env['API_HOST']}"
    for run in (two_runs.first, two_runs.kept):  # with and without --keep alike
        lines = run.stdout.splitlines()
        start = lines.index("still running (the stack stays up):")
        assert lines[start + 1 : start + 5] == [
            f"  API and workers  {api}  (API docs: {api}/docs)",
            f"  Stripe emulator  {demo.emulator_base}",
            "  PostgreSQL       embedded, Unix socket, data in "
            f"{Path(demo.env['STRIPEMETER_HOME']) / 'pgdata'}",
            "stop it with: invoke down",
        ]


def test_demo_runs_again_right_after_with_new_objects(two_runs: TwoRuns, demo: Demo) -> None:
    assert PARITY in two_runs.kept.stdout
    state = demo.state()
    assert state["tenantId"] != two_runs.first_state["tenantId"]
    assert demo.invoice()["id"] != two_runs.first_invoice["id"]
    for name in (".state.json", "validate.log", "invoice.json"):
        assert (demo.state_dir / name).is_file(), name


def test_kept_demo_validates_alone_and_reruns_idempotently(two_runs: TwoRuns, demo: Demo) -> None:
    state = demo.state()
    assert state["cleanedUp"] is False  # --keep
    validate = demo.invoke("validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert PARITY in validate.stdout

    # For scripts: one JSON document is all `invoke validate --json` prints on stdout.
    scripted = demo.invoke("validate", "--json")
    assert scripted.returncode == 0, scripted.stdout + scripted.stderr
    document = json.loads(scripted.stdout)
    assert (document["verdict"], document["exitCode"], document["problems"]) == ("parity", 0, [])
    (invoice,) = document["invoices"]
    assert (invoice["customer"], invoice["ledger"], invoice["stripe"]) == (
        state["customerId"],
        "425",
        "425",
    )
    assert (invoice["invoiceQuantity"], invoice["invoiceAmount"], invoice["status"]) == (
        "425",
        2125,
        "parity",
    )
    assert [p["status"] for p in document["openPeriods"]] == ["parity"]

    again = demo.step("setup")
    assert again.code == 0, again.stdout + again.stderr
    assert "reusing the demo objects" in again.stdout
    assert demo.state()["tenantId"] == state["tenantId"]

    resent = demo.step("send_usage")
    assert resent.code == 0, resent.stdout + resent.stderr
    statuses = [line.split()[-1] for line in resent.stdout.splitlines() if "demo-evt-" in line]
    assert statuses == ["duplicate"] * 4

    asserted = demo.invoke(
        "validate",
        "--assert",
        ".summary.overall.drift_pct <= 0.005",
        "--assert",
        '.invoice.status == "paid" and .state.tenantId != null',
    )
    assert asserted.returncode == 0, asserted.stdout + asserted.stderr
    assert "  assert .summary.overall.drift_pct <= 0.005: ok" in asserted.stdout
    assert demo.last_validation()["asserts"] == [
        ".summary.overall.drift_pct <= 0.005",
        '.invoice.status == "paid" and .state.tenantId != null',
    ]
    failing = demo.step("validate", "--assert", ".invoice.amount_due == 1")
    assert failing.code == 2, failing.stdout + failing.stderr
    assert "assertion failed: .invoice.amount_due == 1 (gave false)" in failing.stdout

    api_down = demo.step("validate", API_HOST=f"127.0.0.1:{free_port()}")
    assert api_down.code == 1
    assert api_down.stderr.startswith("validate: error: cannot reach the stripemeter API")
    assert len(api_down.stderr.strip().splitlines()) == 1

    wrong_key = demo.step(
        "validate", STRIPE_SECRET_KEY="rk_test_wrong", STRIPE_API_BASE=demo.emulator_base
    )
    assert wrong_key.code == 1
    assert wrong_key.stderr.startswith("validate: error: Stripe refused the API key (401)")

    for _ in range(2):  # idempotent
        cleanup = demo.step("cleanup")
        assert cleanup.code == 0, cleanup.stdout + cleanup.stderr
    assert "was already gone" in cleanup.stdout

    gone = demo.step("validate")
    assert gone.code == 1
    assert "no longer exists in Stripe" in gone.stderr
    assert demo.last_validation()["verdict"] == "error"


def test_usage_sent_behind_the_writers_back_is_reported_as_drift(demo: Demo) -> None:
    for step, args in (("setup", ("--fresh",)), ("send_usage", ())):
        done = demo.step(step, *args)
        assert done.code == 0, done.stdout + done.stderr
    state = demo.state()
    client = make_client(None, demo.emulator_base)
    client.v1.billing.meter_events.create(
        {
            "event_name": "api_calls",
            "payload": {"stripe_customer_id": state["customerId"], "value": "10"},
            "identifier": f"behind-the-writer-{uuid.uuid4()}",
            "timestamp": state["frozenTime"] - 600,
        }
    )

    advanced = demo.step("advance_clock")
    assert advanced.code == 0, advanced.stdout + advanced.stderr
    assert "Stripe's meter holds 10 more than the ledger (435 vs 425, still after" in (
        advanced.stdout
    )
    assert "ledger 425, Stripe meter 435: advancing anyway" in advanced.stdout
    assert "agree" not in advanced.stdout

    validate = demo.step("validate")
    assert validate.code == 2, validate.stdout + validate.stderr
    assert "verdict: DRIFT: local 425, invoice quantity 435, amount 2175, drift 10" in (
        validate.stdout
    )
    assert "invoice quantity 435 != ledger 425 (drift 10)" in validate.stdout
    validation = demo.last_validation()
    assert (validation["verdict"], validation["exitCode"]) == ("drift", 2)
    assert validation["drift_abs"] == 10

    cleanup = demo.step("cleanup")
    assert cleanup.code == 0, cleanup.stdout + cleanup.stderr
