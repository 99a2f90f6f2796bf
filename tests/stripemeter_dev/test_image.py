"""The app images, run with testcontainers and the SDK: non-root, health-checked, serving
the emulator; the service image without the dev stack's tools, the steps' with jq."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from testcontainers.core.container import DockerContainer

from stripe_emulator import DEFAULT_PORT as EMULATOR_PORT
from stripemeter.stripe.client import make_client
from stripemeter_dev.docker_specs import LABEL_PROJECT, DockerSettings

pytestmark = pytest.mark.docker

FIND_TOOLS = (
    "import importlib.util as u; "
    "print(' '.join(m for m in ('docker', 'invoke', 'jq') if u.find_spec(m)) or '-')"
)


@pytest.fixture(scope="module")
def emulator(app_image: str) -> Iterator[tuple[DockerContainer, str]]:
    """The image running `stripe-emulator`, published on a free 127.0.0.1 port."""
    container = DockerContainer(app_image).with_command(
        f"stripe-emulator --host 0.0.0.0 --port {EMULATOR_PORT}"
    )
    container.ports = {EMULATOR_PORT: ("127.0.0.1", None)}  # loopback only, any free port
    with container:
        port = container.get_exposed_port(EMULATOR_PORT)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/_emulator/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                stdout, stderr = container.get_logs()
                pytest.fail(f"emulator did not answer: {(stdout + stderr).decode()[-2000:]}")
            time.sleep(0.5)
        yield container, base


def test_the_image_runs_as_a_non_root_user_with_a_health_check(
    docker_engine: Any, app_image: str
) -> None:
    config = docker_engine.images.get(app_image).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"] == ["CMD", "healthcheck"]
    output = docker_engine.containers.run(
        app_image, ["id", "-u"], remove=True, labels={LABEL_PROJECT: "smtest-image"}
    )
    assert output.decode().strip() == "10001"


def test_the_emulator_in_the_image_serves_the_stripe_sdk(
    emulator: tuple[DockerContainer, str],
) -> None:
    _, base = emulator
    client = make_client(None, base)
    customer = client.v1.customers.create(params={"email": "image@example.com"})
    assert customer.id.startswith("cus_")
    assert client.v1.customers.retrieve(customer.id).email == "image@example.com"


def test_the_health_check_script_passes_on_health_and_fails_on_a_dead_port(
    emulator: tuple[DockerContainer, str],
) -> None:
    container, _ = emulator
    wrapped = container.get_wrapped_container()
    ok = wrapped.exec_run(["healthcheck", f"http://127.0.0.1:{EMULATOR_PORT}/_emulator/health"])
    dead = wrapped.exec_run(["healthcheck", "http://127.0.0.1:1/"])
    assert (ok.exit_code, dead.exit_code) == (0, 1)
    assert b"healthcheck: http://127.0.0.1:1/" in dead.output


def _run(client: Any, image: str, command: list[str]) -> str:
    output = client.containers.run(
        image, command, remove=True, labels={LABEL_PROJECT: "smtest-image"}
    )
    return str(output.decode()).strip()


def test_the_service_image_has_no_docker_invoke_or_jq_and_the_steps_image_has_jq(
    docker_engine: Any, app_image: str, base_settings: DockerSettings
) -> None:
    assert _run(docker_engine, app_image, ["python", "-c", FIND_TOOLS]) == "-"
    steps_image = base_settings.step_image
    assert _run(docker_engine, steps_image, ["python", "-c", FIND_TOOLS]) == "jq"
    assert _run(
        docker_engine, steps_image, ["python", "-m", "steps.validate", "--help"]
    ).startswith("usage: validate")
