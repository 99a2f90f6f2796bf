"""The docker runner end to end: the demo's stack and every step as containers.

The stack (PostgreSQL from $POSTGRES_IMAGE, the emulator, the API and the workers from
the app image) runs under a project name of its own with engine-chosen 127.0.0.1 ports,
so it never collides with a demo someone is running; it is torn down by label.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest
import requests

from stripemeter.runners import RunnerError
from stripemeter.runners.docker import DockerRunner
from stripemeter.runners.docker_specs import API_PORT, LABEL_PROJECT, LABEL_SERVICE
from tests.containers.conftest import leftovers

pytestmark = pytest.mark.docker

DEMO = [("setup", ["--fresh"]), ("send_usage", []), ("advance_clock", []), ("validate", [])]


def started_services(client: Any, project: str, since: int) -> list[str]:
    """The service label of every container of `project` started since `since`, in order."""
    events = client.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"type": "container", "event": "start", "label": f"{LABEL_PROJECT}={project}"},
        decode=True,
    )
    return [event["Actor"]["Attributes"][LABEL_SERVICE] for event in events]


def test_a_step_without_a_running_stack_says_to_run_up(isolated_runner: DockerRunner) -> None:
    with pytest.raises(RunnerError, match=r"stack is not up .* run `invoke up --runner docker`"):
        isolated_runner.run_step("validate")


@pytest.mark.slow
def test_demo_steps_in_containers_reach_invoice_parity_and_down_leaves_nothing(
    isolated_runner: DockerRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = isolated_runner
    settings = runner.settings
    since = int(time.time()) - 1

    runner.up()
    runner.migrate()
    api = runner.client.containers.get(settings.container_name("api"))
    binding = api.attrs["NetworkSettings"]["Ports"][f"{API_PORT}/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    ready = requests.get(f"{runner.published_url('api', API_PORT)}/health/ready", timeout=10)
    assert ready.status_code == 200

    codes = {step: runner.run_step(step, args) for step, args in DEMO}
    output = capsys.readouterr().out
    assert codes == {step: 0 for step, _ in DEMO}, output[-3000:]
    assert "verdict: PARITY: local 425, invoice quantity 425, amount 2125, drift 0" in output
    assert "invoice paid" in output

    state = json.loads((settings.state_dir / ".state.json").read_text())
    invoice = json.loads((settings.state_dir / "invoice.json").read_text())
    assert invoice["status"] == "paid"
    lines = [
        line
        for line in invoice["lines"]["data"]
        if line["pricing"]["price_details"]["price"] == state["priceId"]
    ]
    assert [line["quantity"] for line in lines] == [425]
    assert invoice["amount_paid"] == 2125
    # step containers ran as the invoking user, so the state files stay theirs
    assert (settings.state_dir / ".state.json").stat().st_uid == os.getuid()

    assert runner.run_step("cleanup") == 0
    started = started_services(runner.client, settings.project, since)
    assert sorted(started[:2]) == ["emulator", "postgres"]
    assert started[2:4] == ["api", "workers"]
    assert started.count("migrate") == 1
    steps = [name for name in started if name.startswith("step-")]
    assert steps == ["step-setup", "step-send_usage", "step-advance_clock", "step-validate",
                     "step-cleanup"]  # fmt: skip

    runner.down()
    assert leftovers(runner.client, settings.project) == ([], [], [])
