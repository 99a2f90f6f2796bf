"""Container tests: the docker-marker policy, the app image, an isolated stack per test.

Tests marked `docker` need a Docker engine that can run the stack: one that answers,
has (or can pull) `POSTGRES_IMAGE`, and has the app images or can build them (has or
can pull `PYTHON_BASE_IMAGE`). Without that they skip, naming the reason; with
STRIPEMETER_REQUIRE_DOCKER=1 (what CI sets) it is a failure, so a CI run can never pass
by silently skipping them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from stripemeter_dev.docker import DockerRunner, build_app_image, docker_client, docker_usable
from stripemeter_dev.docker_specs import LABEL_PROJECT, DockerSettings
from stripemeter_dev.runner import RunnerError


def _settings_from_environment() -> DockerSettings:
    """Docker settings from this environment (images, ports), forced onto the emulator."""
    settings = DockerSettings.from_environment()
    return dataclasses.replace(settings, stripe_secret_key="", stripe_api_base="")


@lru_cache(maxsize=1)
def _engine() -> tuple[Any, str]:
    """(client, "") when an engine can run the stack, else (None, why not); asked once."""
    try:
        client = docker_client()
    except RunnerError as exc:
        return None, str(exc)
    usable, why = docker_usable(_settings_from_environment(), client)
    return (client, "") if usable else (None, why)


def docker_required() -> bool:
    """True when a missing engine must fail the run instead of skipping (CI)."""
    return os.environ.get("STRIPEMETER_REQUIRE_DOCKER", "") == "1"


def engine_or_skip() -> Any:
    """The engine's client; else skip naming why, or fail when Docker is required."""
    client, why = _engine()
    if client is not None:
        return client
    if docker_required():
        pytest.fail(f"STRIPEMETER_REQUIRE_DOCKER=1 but {why}", pytrace=False)
    pytest.skip(why)


@pytest.fixture(autouse=True)
def _docker_marker_policy(request: pytest.FixtureRequest) -> None:
    """Skip (or, when required, fail) `docker`-marked tests when no engine answers."""
    if request.node.get_closest_marker("docker") is not None:
        engine_or_skip()


@pytest.fixture(scope="session")
def docker_engine() -> Any:
    """The docker SDK client, under the same skip/fail policy as the marker."""
    return engine_or_skip()


@pytest.fixture(scope="session")
def base_settings() -> DockerSettings:
    """Docker settings from this environment (images), forced onto the emulator."""
    return _settings_from_environment()


@pytest.fixture(scope="session")
def app_image(docker_engine: Any, base_settings: DockerSettings) -> str:
    """The app images, built once a session from this checkout (cached layers make it quick);
    the service image's tag."""
    return build_app_image(base_settings, docker_engine)


def leftovers(client: Any, project: str) -> tuple[list[str], list[str], list[str]]:
    """Names of containers, networks and volumes still labelled with `project`."""
    label = {"label": f"{LABEL_PROJECT}={project}"}
    return (
        [c.name for c in client.containers.list(all=True, filters=label)],
        [n.name for n in client.networks.list(filters=label)],
        [v.name for v in client.volumes.list(filters=label)],
    )


@pytest.fixture
def isolated_settings(
    base_settings: DockerSettings, app_image: str, tmp_path: Path
) -> DockerSettings:
    """Settings for a stack of its own: unique project name, any free 127.0.0.1 ports,
    a temporary state dir; so tests never collide with a running demo or each other."""
    return dataclasses.replace(
        base_settings,
        project=f"smtest-{uuid.uuid4().hex[:8]}",
        app_image=app_image,
        api_port=0,
        emulator_port=0,
        postgres_port=0,
        state_dir=tmp_path / "demo-state",
        build_on_up=False,  # the session built it already
    )


@pytest.fixture
def isolated_runner(
    isolated_settings: DockerSettings, docker_engine: Any
) -> Iterator[DockerRunner]:
    """A DockerRunner on an isolated project, torn down (by label) after the test."""
    runner = DockerRunner(isolated_settings, docker_engine)
    try:
        yield runner
    finally:
        runner.down()
        # `down` keeps the state volumes on purpose; a test's unique project must not.
        from docker.errors import NotFound

        for name in (isolated_settings.emulator_volume, isolated_settings.postgres_volume):
            with contextlib.suppress(NotFound):
                docker_engine.volumes.get(name).remove(force=True)
