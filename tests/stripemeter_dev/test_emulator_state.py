"""The dev stack keeps the emulator's state: local `--state-dir`, a docker volume, reset.

The local tests start a real `stripe-emulator` through the runner's own process
supervisor on a free port; the docker ones check the specs and compose as data.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from stripe_emulator.persistence import FILENAME
from stripemeter_dev.docker_specs import (
    EMULATOR_STATE_MOUNT,
    POSTGRES_DATA_MOUNT,
    DockerSettings,
    service_specs,
)
from stripemeter_dev.local import LocalRunner
from tests.steps.conftest import step_environment
from tests.support.servers import free_port

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
AUTH = {"Authorization": "Bearer sk_test_dev_stack"}


@pytest.fixture(autouse=True)
def _in_an_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def runner_for(tmp_path: Path, port: int) -> tuple[LocalRunner, io.StringIO]:
    out = io.StringIO()
    environ = step_environment(
        {
            "DEMO_STATE_DIR": str(tmp_path / "state"),
            "STRIPEMETER_HOME": str(tmp_path / "home"),
            "STRIPE_EMULATOR_PORT": str(port),
        }
    )
    return LocalRunner(environ=environ, out=out), out


def test_local_emulator_runs_with_its_state_under_stripemeter_home(tmp_path: Path) -> None:
    runner, _ = runner_for(tmp_path, 12111)
    argv = runner._emulator_service().argv
    assert argv[argv.index("--state-dir") + 1] == str((tmp_path / "home" / "emulator").resolve())


def test_local_emulator_state_survives_a_restart_and_emulator_reset_empties_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    runner, out = runner_for(tmp_path, port)
    url = f"http://127.0.0.1:{port}"
    runner.logs_dir.mkdir(parents=True)
    runner.pids_dir.mkdir(parents=True)
    try:
        runner.processes.ensure(runner._emulator_service())
        made = requests.post(f"{url}/v1/customers", data={"name": "kept"}, headers=AUTH, timeout=5)
        cus_id = made.json()["id"]
        runner.processes.stop("emulator")
        runner.processes.ensure(runner._emulator_service())
        again = requests.get(f"{url}/v1/customers/{cus_id}", headers=AUTH, timeout=5)
        assert again.status_code == 200
        runner.emulator_reset()
        assert f"emulator-reset: emptied the running emulator at {url}" in out.getvalue()
        gone = requests.get(f"{url}/v1/customers/{cus_id}", headers=AUTH, timeout=5)
        assert gone.status_code == 404
        requests.post(f"{url}/v1/customers", data={"name": "on disk"}, headers=AUTH, timeout=5)
    finally:
        runner.processes.stop("emulator")
    state_dir = runner.emulator_state_dir
    assert (state_dir / FILENAME).exists()
    runner.emulator_reset()
    assert f"emulator-reset: deleted the stored emulator state in {state_dir}" in out.getvalue()
    assert not (state_dir / FILENAME).exists()
    runner.emulator_reset()
    assert (
        out.getvalue().strip().endswith(f"emulator-reset: no stored emulator state in {state_dir}")
    )


def test_docker_emulator_and_postgres_keep_their_state_in_named_volumes(tmp_path: Path) -> None:
    settings = DockerSettings.from_environment({"DEMO_STATE_DIR": str(tmp_path)})
    spec = {s.name: s for s in service_specs(settings)}["emulator"]
    assert spec.command[-2:] == ("--state-dir", EMULATOR_STATE_MOUNT)
    assert dict(spec.volumes) == {"stripemeter-emulator-state": EMULATOR_STATE_MOUNT}
    postgres = {s.name: s for s in service_specs(settings)}["postgres"]
    assert dict(postgres.volumes) == {"stripemeter-pgdata": POSTGRES_DATA_MOUNT}
    stateless = [s.name for s in service_specs(settings) if s.volumes]
    assert sorted(stateless) == ["emulator", "postgres"]


def test_compose_mounts_the_same_named_volumes_at_the_same_paths() -> None:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    volumes = compose["services"]["emulator"]["volumes"]
    assert volumes == [f"emulator-state:{EMULATOR_STATE_MOUNT}"]
    assert "emulator-state" in compose["volumes"]
    assert compose["services"]["postgres"]["volumes"] == [f"pgdata:{POSTGRES_DATA_MOUNT}"]
    assert "pgdata" in compose["volumes"]
