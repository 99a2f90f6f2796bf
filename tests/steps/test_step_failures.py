"""Every step run without its prerequisites exits non-zero with one line, no traceback.

Most cases call the step's `main` in-process (`call_step`: the same wrapper and exit
codes, without an interpreter start per case); a few run real `python -m steps.<name>`
processes (`run_step`) to show the same holds for the command a user types.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from steps._state import DemoState, save_state
from stripemeter_dev.runner import STEP_NAMES
from tests.steps.conftest import StepRunner
from tests.support.emulator import running_emulator
from tests.support.servers import free_port


class Recorder:
    """An HTTP server on 127.0.0.1 that records every request and answers 500."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                recorder.requests.append(f"{self.command} {self.path}")
                self.send_response(500)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"error": {"type": "api_error", "message": "recorder"}}')

            do_GET = do_POST = do_DELETE = _record

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    thread = threading.Thread(target=rec.server.serve_forever, daemon=True)
    thread.start()
    yield rec
    rec.server.shutdown()
    rec.server.server_close()


def complete_state(state_dir: Path, stripe_base: str) -> DemoState:
    """A finished setup's state (ids need not exist anywhere) plus an invoice.json."""
    state = DemoState(
        tenantId="8a7f5c52-3c7e-4a53-9c3f-0d7f6d3a1b11",
        testClockId="clock_test",
        stripeApiBase=stripe_base,
        meterId="mtr_test",
        productId="prod_test",
        priceId="price_test",
        customerId="cus_test",
        paymentMethodId="pm_test",
        subscriptionId="sub_test",
        subscriptionItemId="si_test",
        frozenTime=1_780_000_000,
        periodStart=1_779_900_000,
        periodEnd=1_782_500_000,
        setupComplete=True,
    )
    save_state(state_dir, state)
    (state_dir / "invoice.json").write_text(json.dumps({"id": "in_test"}))
    return state


def assert_one_line_failure(result, step: str, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{step}: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


# setup makes the state; scenario keeps none between runs (each has its own tenant).
@pytest.mark.parametrize("step", [s for s in STEP_NAMES if s not in ("setup", "scenario")])
def test_step_without_state_names_the_missing_state_and_what_to_run(
    call_step: StepRunner, tmp_path: Path, step: str
) -> None:
    state_dir = tmp_path / "empty-state"
    result = call_step(step, env={"DEMO_STATE_DIR": str(state_dir)})
    assert_one_line_failure(result, step, f"no demo state at {state_dir / '.state.json'}")
    assert "invoke setup" in result.stderr


REFUSED = "Failed to establish a new connection: [Errno 111] Connection refused"


def test_setup_with_the_emulator_unreachable_says_so_and_how_to_start_it(
    call_step: StepRunner, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    result = call_step(
        "setup", env={"DEMO_STATE_DIR": str(tmp_path / "s"), "STRIPE_API_BASE": base}
    )
    assert_one_line_failure(result, "setup")
    assert result.stderr.strip() == (
        f"setup: error: Stripe emulator unreachable at {base}: {REFUSED}; is it running? "
        "`invoke up` starts it"
    )
    assert not (tmp_path / "s" / ".state.json").exists()


def test_stripe_unreachable_with_a_key_names_host_full_cause_and_fix_without_emulator_hint(
    run_step: StepRunner, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    result = run_step(
        "setup",
        env={
            "DEMO_STATE_DIR": str(tmp_path / "s"),
            "STRIPE_SECRET_KEY": "sk_test_not_a_real_key",
            "STRIPE_API_BASE": base,
        },
    )
    assert_one_line_failure(result, "setup")
    assert result.stderr.strip() == (
        f"setup: error: Stripe unreachable at {base}: {REFUSED}; check the network, or "
        "unset STRIPE_SECRET_KEY and STRIPE_API_BASE to use the local emulator"
    )
    assert "invoke up" not in result.stderr


@pytest.mark.parametrize("live_opt_in", ["0", "1"])
@pytest.mark.parametrize(
    ("step", "key"),
    [(step, "sk_live_abc123") for step in STEP_NAMES] + [("setup", "rk_live_abc123")],
)
def test_live_key_is_refused_before_any_call_even_with_the_service_live_opt_in(
    call_step: StepRunner, recorder: Recorder, tmp_path: Path, step: str, key: str, live_opt_in: str
) -> None:
    complete_state(tmp_path, recorder.url)
    result = call_step(
        step,
        env={
            "DEMO_STATE_DIR": str(tmp_path),
            "STRIPE_SECRET_KEY": key,
            "STRIPE_API_BASE": recorder.url,
            "API_HOST": recorder.url,
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "STRIPEMETER_LIVE": live_opt_in,
        },
    )
    assert_one_line_failure(
        result, step, "refused", "live-mode key", "whatever STRIPEMETER_LIVE says"
    )
    assert recorder.requests == []


@pytest.mark.parametrize("step", STEP_NAMES)
def test_a_live_key_aimed_at_the_emulator_with_the_opt_in_is_refused(
    call_step: StepRunner, tmp_path: Path, step: str
) -> None:
    with running_emulator() as emulator:
        complete_state(tmp_path, emulator)
        result = call_step(
            step,
            env={
                "DEMO_STATE_DIR": str(tmp_path),
                "STRIPE_SECRET_KEY": "sk_live_abc123",
                "STRIPE_API_BASE": emulator,
                "STRIPEMETER_LIVE": "1",
            },
        )
    assert_one_line_failure(result, step, "refused", "live-mode key")


def test_non_test_key_is_refused(call_step: StepRunner, recorder: Recorder, tmp_path: Path) -> None:
    complete_state(tmp_path, recorder.url)
    result = call_step(
        "advance_clock",
        env={"DEMO_STATE_DIR": str(tmp_path), "STRIPE_SECRET_KEY": "pk_test_123"},
    )
    assert_one_line_failure(result, "advance_clock", "does not look like a Stripe test key")
    assert recorder.requests == []


def test_send_usage_with_the_api_down_names_the_api_address(
    call_step: StepRunner, recorder: Recorder, tmp_path: Path
) -> None:
    complete_state(tmp_path, recorder.url)
    port = free_port()
    result = call_step(
        "send_usage",
        env={"DEMO_STATE_DIR": str(tmp_path), "API_HOST": f"127.0.0.1:{port}"},
    )
    assert_one_line_failure(
        result, "send_usage", f"cannot reach the stripemeter API at http://127.0.0.1:{port}"
    )
    assert "invoke up" in result.stderr


def test_unfinished_setup_is_not_used_by_later_steps(call_step: StepRunner, tmp_path: Path) -> None:
    save_state(tmp_path, DemoState(tenantId="t", testClockId="clock_x", stripeApiBase="http://x"))
    result = call_step("advance_clock", env={"DEMO_STATE_DIR": str(tmp_path)})
    assert_one_line_failure(result, "advance_clock", "setup did not finish", "invoke setup")


def test_corrupt_state_file_is_named(call_step: StepRunner, tmp_path: Path) -> None:
    (tmp_path / ".state.json").write_text("{not json")
    result = call_step("cleanup", env={"DEMO_STATE_DIR": str(tmp_path)})
    assert_one_line_failure(result, "cleanup", f"{tmp_path / '.state.json'} is not valid JSON")


def test_validate_refuses_an_invalid_jq_assertion(call_step: StepRunner, tmp_path: Path) -> None:
    result = call_step(
        "validate", "--assert", ".summary |||", env={"DEMO_STATE_DIR": str(tmp_path)}
    )
    assert_one_line_failure(result, "validate", "--assert '.summary |||' is not a valid jq program")


def test_validate_without_invoice_says_to_advance_the_clock(
    call_step: StepRunner, recorder: Recorder, tmp_path: Path
) -> None:
    complete_state(tmp_path, recorder.url)
    (tmp_path / "invoice.json").unlink()
    result = call_step("validate", env={"DEMO_STATE_DIR": str(tmp_path)})
    assert_one_line_failure(result, "validate", "no invoice at", "invoke advance-clock")
    logged = [json.loads(line) for line in (tmp_path / "validate.log").read_text().splitlines()]
    assert logged[-1]["verdict"] == "error" and logged[-1]["exitCode"] == 1
    assert (logged[-1]["tenantId"], logged[-1]["scenario"]) == (
        "8a7f5c52-3c7e-4a53-9c3f-0d7f6d3a1b11",
        "seed",
    )
    assert recorder.requests == []


def test_unknown_option_is_one_line(call_step: StepRunner, tmp_path: Path) -> None:
    result = call_step("send_usage", "--bogus", env={"DEMO_STATE_DIR": str(tmp_path)})
    assert_one_line_failure(result, "send_usage", "unrecognized arguments: --bogus")


def test_bad_configuration_value_is_named(call_step: StepRunner, tmp_path: Path) -> None:
    result = call_step(
        "validate", env={"DEMO_STATE_DIR": str(tmp_path), "RECONCILIATION_EPSILON": "lots"}
    )
    assert_one_line_failure(result, "validate", "RECONCILIATION_EPSILON")


def test_cleanup_with_the_database_unreachable_says_so(
    call_step: StepRunner, tmp_path: Path
) -> None:
    with running_emulator() as emulator:
        complete_state(tmp_path, emulator)  # its clock does not exist: "already gone"
        result = call_step(
            "cleanup",
            env={
                "DEMO_STATE_DIR": str(tmp_path),
                "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{free_port()}/none",
            },
        )
    assert_one_line_failure(result, "cleanup", "database error: cannot connect to PostgreSQL")
    assert "test clock clock_test was already gone" in result.stdout


def test_step_processes_fail_in_one_line_too(
    run_step: StepRunner, recorder: Recorder, tmp_path: Path
) -> None:
    no_state = run_step("validate", env={"DEMO_STATE_DIR": str(tmp_path / "none")})
    assert_one_line_failure(no_state, "validate", "no demo state at")

    complete_state(tmp_path, recorder.url)
    live = run_step(
        "setup",
        env={
            "DEMO_STATE_DIR": str(tmp_path),
            "STRIPE_SECRET_KEY": "sk_live_abc123",
            "STRIPE_API_BASE": recorder.url,
            "STRIPEMETER_LIVE": "1",
        },
    )
    assert_one_line_failure(live, "setup", "refused", "live-mode key")

    port = free_port()
    api_down = run_step(
        "send_usage", env={"DEMO_STATE_DIR": str(tmp_path), "API_HOST": f"127.0.0.1:{port}"}
    )
    assert_one_line_failure(api_down, "send_usage", "cannot reach the stripemeter API")
    assert recorder.requests == []


def test_validate_refuses_an_invoice_of_an_earlier_run(
    call_step: StepRunner, recorder: Recorder, tmp_path: Path
) -> None:
    complete_state(tmp_path, recorder.url)
    (tmp_path / "invoice.json").write_text(json.dumps({"id": "in_old", "customer": "cus_old"}))
    result = call_step("validate", env={"DEMO_STATE_DIR": str(tmp_path)})
    assert_one_line_failure(
        result, "validate", "is the invoice of an earlier run (customer cus_old, not cus_test)"
    )
    assert recorder.requests == []


def test_setup_checks_stripe_before_it_starts_the_embedded_postgresql(
    call_step: StepRunner, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    state_dir = tmp_path / "s"
    base = f"http://127.0.0.1:{free_port()}"
    # A previous run on another Stripe: setup would retire its mapping (the database).
    complete_state(state_dir, "http://127.0.0.1:1")
    result = call_step(
        "setup",
        "--fresh",
        env={
            "DEMO_STATE_DIR": str(state_dir),
            "STRIPE_API_BASE": base,
            "STRIPEMETER_HOME": str(home),
        },
    )
    assert_one_line_failure(result, "setup", f"Stripe emulator unreachable at {base}")
    assert not (home / "pgdata").exists()


def test_a_failing_step_stops_the_embedded_postgresql_it_started(
    run_step: StepRunner, emulator_url: str, tmp_path: Path
) -> None:
    import shutil
    import tempfile

    from stripemeter.config import Settings
    from stripemeter.db import embedded

    # Where the suite keeps its embedded servers: a short path the server's user can reach.
    home = Path(tempfile.mkdtemp(prefix="smtest-", dir="/tmp"))
    settings = Settings.load({"STRIPEMETER_HOME": str(home)})
    state_dir = tmp_path / "s"
    complete_state(state_dir, emulator_url)
    try:
        # cleanup: the emulator answers 404 for the clock (gone), then the mapping's database is
        # the embedded one, stopped, started by the step and not migrated: the step fails.
        result = run_step(
            "cleanup",
            env={
                "DEMO_STATE_DIR": str(state_dir),
                "STRIPE_API_BASE": emulator_url,
                "STRIPEMETER_HOME": str(home),
            },
        )
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert (home / "pgdata").is_dir()  # the step did start it
        assert "no price_mappings table; run `invoke migrate` first" in result.stderr
        assert "stopped the embedded PostgreSQL this step started" in result.stdout
        assert embedded.running_url(settings) is None
    finally:
        embedded.stop(settings)
        shutil.rmtree(home, ignore_errors=True)
