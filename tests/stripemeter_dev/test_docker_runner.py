"""The docker runner end to end: the demo's stack and every step as containers.

The stack (PostgreSQL from $POSTGRES_IMAGE, the emulator, the API and the workers from
the app image) runs under a project name of its own with engine-chosen 127.0.0.1 ports,
so it never collides with a demo someone is running; it is torn down by label.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import requests

from stripemeter_dev.docker import DockerRunner
from stripemeter_dev.docker_specs import API_PORT, LABEL_PROJECT, LABEL_SERVICE
from stripemeter_dev.runner import DEMO_STEPS, RunnerError
from tests.stripemeter_dev.conftest import leftovers

pytestmark = pytest.mark.docker

DEMO = [("setup", ["--fresh"]), ("send_usage", []), ("advance_clock", []), ("validate", [])]


@contextmanager
def container_starts(client: Any, project: str) -> Iterator[list[str]]:
    """Collect, live, the service label of every container of `project` that starts.

    Live, because the engine keeps only a short history of events (health checks alone
    fill it within a minute).
    """
    stream = client.events(
        filters={"type": "container", "event": "start", "label": f"{LABEL_PROJECT}={project}"},
        decode=True,
    )
    seen: list[str] = []

    def pump() -> None:
        with suppress(Exception):  # closing the stream ends the loop with an error
            for event in stream:
                seen.append(event["Actor"]["Attributes"][LABEL_SERVICE])

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        time.sleep(1)  # let the last event arrive
        stream.close()
        thread.join(timeout=5)


def test_a_step_without_a_running_stack_says_to_run_up(isolated_runner: DockerRunner) -> None:
    with pytest.raises(RunnerError, match=r"stack is not up .* run `invoke up --runner docker`"):
        isolated_runner.run_step("validate")


@pytest.mark.slow
def test_demo_steps_in_containers_reach_invoice_parity_and_down_leaves_nothing(
    isolated_runner: DockerRunner, capsys: pytest.CaptureFixture[str]
) -> None:
    runner = isolated_runner
    settings = runner.settings
    with container_starts(runner.client, settings.project) as started:
        demo_in_containers(runner, capsys)
        # `invoke scenarios --runner docker`: the checkout's scenarios/ mounted read-only.
        code = runner.run_step("scenario", ["--only", "seed", "--only", "multi-customer"])
        output = capsys.readouterr().out
        assert code == 0, output[-3000:]
        assert "verdict: PARITY: 2 scenario(s)" in output
    assert sorted(started[:2]) == ["emulator", "postgres"]
    assert started[2:] == [
        "api",
        "workers",
        "migrate",
        *(f"step-{step}" for step in DEMO_STEPS),
        "step-scenario",
    ]

    runner.down()
    assert leftovers(runner.client, settings.project) == ([], [], [])


def demo_in_containers(runner: DockerRunner, capsys: pytest.CaptureFixture[str]) -> None:
    """What `invoke demo --runner docker` does, checking parity on the way."""
    settings = runner.settings
    runner.up()
    runner.migrate()
    api = runner.client.containers.get(settings.container_name("api"))
    binding = api.attrs["NetworkSettings"]["Ports"][f"{API_PORT}/tcp"][0]
    assert binding["HostIp"] == "127.0.0.1"
    ready = requests.get(f"{runner.published_url('api', API_PORT)}/health/ready", timeout=10)
    assert ready.status_code == 200
    # What `invoke demo` prints at its end: every service, the API with its docs.
    running = {line.split()[0]: line for line in runner.still_running()}
    assert set(running) == {"api", "emulator", "postgres", "workers"}
    api_url = runner.published_url("api", API_PORT)
    assert f"{api_url}  (API docs: {api_url}/docs)" in running["api"]
    assert "no published port" in running["workers"]

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
