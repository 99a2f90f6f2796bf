"""docker-compose.yml describes the same stack the docker runner starts.

Parsed with PyYAML, `${VAR:-default}` interpolated with every variable unset (the
defaults a user gets), then compared service by service with `service_specs`:
services, images, commands, environment (names and default values), ports (127.0.0.1
only) and health checks. Needs no Docker engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from stripemeter_dev.docker_specs import (
    STATE_MOUNT,
    DockerSettings,
    ServiceSpec,
    image_builds,
    service_specs,
    step_spec,
)

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
VARIABLE = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: Any) -> Any:
    """Compose's `${VAR}`, `${VAR-default}` and `${VAR:-default}` with VAR unset."""
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: m.group("default") or "", value)
    if isinstance(value, list):
        return [interpolate(item) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item) for key, item in value.items()}
    return value


@pytest.fixture
def compose() -> dict[str, Any]:
    """The compose services with defaults substituted (YAML merge keys resolved)."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    return dict(interpolate(document["services"]))


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> DockerSettings:
    """The docker settings of a user with no configuration at all (no variable, no .env)."""
    monkeypatch.chdir(tmp_path)
    return DockerSettings.from_environment(environ={})


@pytest.fixture
def default_specs(default_settings: DockerSettings) -> dict[str, ServiceSpec]:
    """What the runner starts for a user with no configuration at all."""
    return {spec.name: spec for spec in service_specs(default_settings)}


def compose_ports(service: dict[str, Any]) -> dict[int, int]:
    """`127.0.0.1:HOST:CONTAINER` entries as {container: host}; any other form fails."""
    ports: dict[int, int] = {}
    for entry in service.get("ports", []):
        host_ip, host, container = str(entry).split(":")
        assert host_ip == "127.0.0.1", f"port {entry} is not bound to 127.0.0.1"
        ports[int(container)] = int(host)
    return ports


def test_compose_has_the_runners_services(
    compose: dict[str, Any], default_specs: dict[str, ServiceSpec]
) -> None:
    started_by_default = {name for name, svc in compose.items() if "profiles" not in svc}
    assert started_by_default == set(default_specs)
    assert set(default_specs) == {"postgres", "emulator", "migrate", "api", "workers"}


@pytest.mark.parametrize("name", ["postgres", "emulator", "migrate", "api", "workers"])
def test_compose_service_matches_runner_spec(
    name: str, compose: dict[str, Any], default_specs: dict[str, ServiceSpec]
) -> None:
    service, spec = compose[name], default_specs[name]
    assert service["image"] == spec.image
    assert tuple(service.get("command", ())) == spec.command
    assert {k: str(v) for k, v in service.get("environment", {}).items()} == dict(spec.environment)
    assert compose_ports(service) == dict(spec.ports)
    expected_check = ["CMD", *spec.healthcheck] if spec.healthcheck else None
    assert service.get("healthcheck", {}).get("test") == expected_check


def test_compose_builds_the_images_the_runner_builds(
    compose: dict[str, Any], default_settings: DockerSettings
) -> None:
    service_image, step_image = image_builds(default_settings)
    for name in ("emulator", "migrate", "api", "workers"):
        assert compose[name]["image"] == service_image.tag == "stripemeter:local"
        assert compose[name]["build"]["dockerfile"] == "docker/Dockerfile"
        assert compose[name]["build"]["args"] == dict(service_image.buildargs)
    assert service_image.buildargs == {"BASE_IMAGE": "python:3.12-slim", "EXTRAS": ""}
    assert compose["step"]["image"] == step_image.tag == "stripemeter-demo:local"
    assert compose["step"]["build"]["dockerfile"] == "docker/Dockerfile"
    assert compose["step"]["build"]["args"] == dict(step_image.buildargs)
    assert step_image.buildargs == {"BASE_IMAGE": "python:3.12-slim", "EXTRAS": "demo"}
    assert compose["postgres"]["image"] == "postgres:16-alpine"


def test_compose_step_service_matches_runner_step_containers(
    compose: dict[str, Any], default_settings: DockerSettings
) -> None:
    spec = step_spec(default_settings, "validate")
    step = compose["step"]
    assert step["profiles"] == ["steps"]
    assert step["image"] == spec.image
    assert tuple(step["command"]) == spec.command
    assert {k: str(v) for k, v in step["environment"].items()} == dict(spec.environment)
    assert [volume["target"] for volume in step["volumes"]] == [STATE_MOUNT]
