"""`advance_clock` against a real API, PostgreSQL and the emulator: its hints point the
right way (a deleted mapping is named as the cause, not the workers) and its words agree
with its figures (no "agree" after a disagreement, one warning only when it lasts).

Built on `tests.steps.demo_world`: a two-customer world on one clock, the demo state
the steps read, the real step run in-process.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from steps._billing import SETTLE_S
from tests.steps.conftest import StepRunner
from tests.steps.demo_world import demo_world
from tests.support.stripe_world import HOUR


def test_a_deleted_mapping_is_named_as_the_cause_at_once_not_the_workers(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        tenant = str(demo.world.tenant_id)
        demo.delete_mapping()

        result = call_step("advance_clock", env=demo.env(DEMO_WAIT_TIMEOUT_S="60"))
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.strip() == (
            f"advance_clock: error: tenant {tenant} has no active mapping of api_calls to "
            f"price {demo.world.price_id} (removed by `invoke cleanup`?), so the writer "
            "pushes nothing to Stripe; run `invoke setup` to map it again"
        )
        assert "stripemeter workers" not in result.stdout + result.stderr
        assert "waiting for" not in result.stdout  # failed at once, no 60 s wait


def test_stripe_ahead_of_the_ledger_is_one_warning_and_never_called_agreement(
    emulator_url: str, db_url: str, tmp_path: Path, call_step: StepRunner
) -> None:
    with demo_world(emulator_url, db_url, tmp_path) as demo:
        demo.send(demo.first, demo.frozen - 3 * HOUR, 425, "a1")
        demo.drain()
        demo.rogue(demo.first, demo.frozen - 2 * HOUR, 7, "behind-the-writers-back")

        result = call_step("advance_clock", env=demo.env(DEMO_WAIT_TIMEOUT_S="60"))
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        warnings = [line.strip() for line in out.splitlines() if "WARNING" in line]
        assert warnings == [
            "WARNING: Stripe's meter holds 7 more than the ledger (432 vs 425, still after "
            f"{SETTLE_S:.0f} s): usage reached Stripe without the writer, validate will "
            "report it as drift"
        ]
        assert "agree" not in out
        assert "ledger 425, Stripe meter 432: advancing anyway (validate reports the drift)" in out


class _StaticApi:
    """The two API answers the wait reads besides the totals: an active mapping of the
    demo's price, and nothing pending."""

    def __init__(self, price_id: str) -> None:
        self.price_id = price_id

    def get(self, path: str, params: dict[str, str] | None = None) -> object:
        if path == "/v1/mappings":
            return {"mappings": [{"metric": "api_calls", "priceId": self.price_id, "active": True}]}
        assert path == "/v1/writer/status", path
        return {"pendingBuckets": 0, "lastError": None}


def test_a_meter_read_briefly_ahead_of_the_ledger_settles_without_a_warning(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The two totals are two reads, not one snapshot: a ledger read that trails the
    meter by one push must be re-read, and end as agreement, not a warning."""
    import steps._billing as billing
    from steps._state import DemoState

    ledger = iter([Decimal(425), Decimal(432)])
    monkeypatch.setattr(billing, "local_total", lambda *_: next(ledger))
    monkeypatch.setattr(billing, "meter_total", lambda *_: Decimal(432))
    state = DemoState(tenantId="t1", testClockId="clock_1", stripeApiBase="x", priceId="price_1")
    synced = billing.wait_writer_synced(
        _StaticApi("price_1"),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        state,
        at_least=None,
        timeout_s=30,
    )
    assert (synced.ledger, synced.stripe, synced.agree) == (Decimal(432), Decimal(432), True)
    assert "WARNING" not in capsys.readouterr().out
