"""The docker runner: every service and every demo step in its own container.

Orchestration goes through the `docker` SDK (no compose binary). `service_specs`
describes the stack as data (what `up` starts, and what `docker-compose.yml` must agree
with); `DockerRunner` turns specs into containers on a dedicated network, waits for
their health checks, runs migrations and steps as one-shot containers, and `down`
removes everything carrying this project's label. Published ports bind 127.0.0.1 only.

Errors: every failure a user can cause or meet (no engine, image build failure, port
taken, a service that dies) surfaces as `RunnerError` with a one-line reason.
"""

from __future__ import annotations

import importlib
import sys
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from stripemeter.errors import ConfigError, StripeConfigError
from stripemeter.stripe.client import resolve_stripe_target
from stripemeter_dev.docker_specs import (
    API_PORT,
    DOCKERFILE,
    EMULATOR_PORT,
    LABEL_PROJECT,
    LABEL_SERVICE,
    SCENARIOS_MOUNT,
    STATE_MOUNT,
    DockerSettings,
    ImageBuild,
    ServiceSpec,
    image_builds,
    service_specs,
    step_spec,
)
from stripemeter_dev.runner import RunnerError
from stripemeter_dev.settings import find_checkout

__all__ = [
    "DockerRunner",
    "DockerSettings",
    "ServiceSpec",
    "build_app_image",
    "docker_client",
    "docker_usable",
    "service_specs",
    "step_spec",
]

SECOND_NS = 1_000_000_000
# The variable that moves each service's published host port, for "port taken" errors.
PORT_VARIABLES = {
    "api": "STRIPEMETER_API_PORT",
    "emulator": "STRIPE_EMULATOR_PORT",
    "postgres": "STRIPEMETER_POSTGRES_PORT",
}
PORT_TAKEN = ("port is already allocated", "address already in use")
HEALTH_TIMEOUT_S = 180.0


def source_dir(settings: DockerSettings) -> Path:
    """The checkout holding docker/Dockerfile (STRIPEMETER_CHECKOUT or the working dir)."""
    try:
        return find_checkout(settings.checkout)
    except ConfigError as exc:
        raise RunnerError(f"cannot build the images: {exc}") from None


def docker_client(timeout_s: int = 300) -> Any:
    """A client for the engine in the environment (DOCKER_HOST or the default socket).

    The timeout is generous: on copy-per-layer storage (vfs) creating a container copies
    the whole image, which can take many seconds.
    """
    try:
        # By name: mypy would otherwise take the repository's docker/ directory for the SDK.
        sdk = importlib.import_module("docker")
        client = sdk.from_env(timeout=timeout_s)
        client.ping()
    except Exception as exc:  # the SDK raises several unrelated types for "no engine"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunnerError(
            f"no Docker engine answers ({reason}); start one or use --runner local"
        ) from None
    return client


def build_app_image(settings: DockerSettings | None = None, client: Any = None) -> str:
    """Build the images `image_builds` names on `PYTHON_BASE_IMAGE`; return the app's tag.

    Streams the builder's output; cached layers make a rebuild of unchanged sources
    take seconds, and the two images share every layer but the last. Builds use the
    host network (needed where bridges have no NAT).
    """
    settings = settings or DockerSettings.from_environment()
    client = client or docker_client()
    context = source_dir(settings)
    for build in image_builds(settings):
        _build(client, context, build)
    return settings.app_image


def _build(client: Any, context: Path, build: ImageBuild) -> None:
    from docker.errors import APIError

    print(f"image: building {build.tag} from {build.buildargs['BASE_IMAGE']}", flush=True)
    started = time.monotonic()
    try:
        chunks = client.api.build(
            path=str(context),
            dockerfile=DOCKERFILE,
            tag=build.tag,
            buildargs=dict(build.buildargs),
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in chunks:
            if "error" in chunk:
                raise RunnerError(f"image build failed: {str(chunk['error']).strip()}")
            text = str(chunk.get("stream", "")).rstrip()
            if text.startswith("Step ") or (text and not text.startswith(" ---")):
                print(f"  {text}", flush=True)
    except APIError as exc:
        raise RunnerError(f"image build failed: {exc.explanation or exc}") from None
    print(f"image: {build.tag} ready in {time.monotonic() - started:.0f} s", flush=True)


def _unavailable(client: Any, image: str) -> str | None:
    """None when `image` is here or its registry knows it; else why it cannot be had."""
    from docker.errors import DockerException, ImageNotFound

    try:
        client.images.get(image)
        return None
    except ImageNotFound:
        pass
    try:
        client.images.get_registry_data(image)
        return None
    except DockerException as exc:
        reason = getattr(exc, "explanation", None) or str(exc)
        return f"{image} is not here and cannot be pulled ({_last_line(str(reason))})"


def docker_usable(settings: DockerSettings | None = None, client: Any = None) -> tuple[bool, str]:
    """Whether the docker runner can work here, and why (printed by `--runner auto`).

    Usable when an engine answers, the PostgreSQL image is here or pullable, and the app
    images exist or can be built (a checkout with docker/Dockerfile and a usable base).
    """
    try:
        settings = settings or DockerSettings.from_environment()
        client = client or docker_client(timeout_s=15)
    except (RunnerError, ConfigError) as exc:
        return False, str(exc)
    problem = _unavailable(client, settings.postgres_image)
    if problem:
        return False, f"a Docker engine answers but {problem}; set POSTGRES_IMAGE"
    images = (settings.app_image, settings.step_image)
    if all(_unavailable(client, image) is None for image in images):
        return True, f"a Docker engine answers and images {', '.join(images)}, " + (
            f"{settings.postgres_image} are available"
        )
    try:
        source_dir(settings)
    except RunnerError as exc:
        return False, f"a Docker engine answers but the app images are missing: {exc}"
    problem = _unavailable(client, settings.base_image)
    if problem:
        return False, f"a Docker engine answers but {problem}; set PYTHON_BASE_IMAGE"
    return True, (
        f"a Docker engine answers and {', '.join(images)} can be built from {DOCKERFILE} "
        f"on {settings.base_image}"
    )


class DockerRunner:
    """Runs the stack and the demo's steps as containers (see the module docstring)."""

    name = "docker"

    def __init__(self, settings: DockerSettings | None = None, client: Any = None) -> None:
        self._settings = settings
        self._client = client

    @property
    def settings(self) -> DockerSettings:
        """The settings in use (read from the environment on first use)."""
        if self._settings is None:
            self._settings = DockerSettings.from_environment()
        return self._settings

    @property
    def client(self) -> Any:
        """The docker SDK client (connected on first use)."""
        if self._client is None:
            self._client = docker_client()
        return self._client

    # -- the Runner protocol ------------------------------------------------------------

    def up(self) -> None:
        """Build the image (cached), create the network, start and wait for every service.

        Containers are created concurrently first (on copy-per-layer storage creation is
        the slow part), then started in dependency order: PostgreSQL and the emulator,
        the API (which applies pending migrations under an advisory lock before it reports
        ready), then the workers once the schema exists.
        """
        settings = self.settings
        _refuse_unsafe_stripe(settings)
        if settings.build_on_up:
            build_app_image(settings, self.client)
        else:
            self._ensure_image(settings.app_image, "STRIPEMETER_IMAGE")
            self._ensure_image(settings.step_image, "STRIPEMETER_DEMO_IMAGE")
        self._ensure_image(settings.postgres_image, "POSTGRES_IMAGE")
        self._ensure_network()
        specs = {spec.name: spec for spec in service_specs(settings) if not spec.one_shot}
        with ThreadPoolExecutor(max_workers=len(specs)) as pool:
            created = dict(zip(specs, pool.map(self._prepare, specs.values()), strict=True))
        order: list[list[str]] = [
            [n for n in ("postgres", "emulator") if n in specs],
            ["api"],
            ["workers"],
        ]
        for group in order:
            for name in group:
                self._launch(specs[name], created[name])
            for name in group:
                self._wait_healthy(specs[name])
        print(f"stack: up; API on {self.published_url('api', API_PORT)}", flush=True)

    def down(self) -> None:
        """Remove every container, network and volume labelled with this project."""
        label = f"{LABEL_PROJECT}={self.settings.project}"
        containers = self.client.containers.list(all=True, filters={"label": label})
        if containers:
            with ThreadPoolExecutor(max_workers=min(len(containers), 6)) as pool:
                list(pool.map(lambda c: c.remove(force=True, v=True), containers))
        networks = self.client.networks.list(filters={"label": label})
        for network in networks:
            network.remove()
        volumes = self.client.volumes.list(filters={"label": label})
        for volume in volumes:
            volume.remove(force=True)
        print(
            f"stack: down; removed {len(containers)} containers, {len(networks)} networks, "
            f"{len(volumes)} volumes",
            flush=True,
        )

    def emulator_reset(self) -> None:
        """Empty the emulator: through `/_emulator/reset` when it runs, else its volume.

        `down` keeps the volume (it is not labelled with the project), so the state
        survives `down` then `up` as it does with the local runner.
        """
        from docker.errors import NotFound

        current = self._get("emulator")
        if current is not None and current.status == "running":
            url = self.published_url("emulator", EMULATOR_PORT)
            try:
                requests.post(f"{url}/_emulator/reset", timeout=10).raise_for_status()
            except requests.RequestException as exc:
                raise RunnerError(f"could not reset the emulator at {url}: {exc}") from None
            print(f"emulator-reset: emptied the running emulator at {url} (and its state)")
            return
        if current is not None:
            current.remove(force=True)
        name = self.settings.emulator_volume
        try:
            self.client.volumes.get(name).remove(force=True)
        except NotFound:
            print(f"emulator-reset: no emulator state volume {name}")
            return
        print(f"emulator-reset: removed the emulator state volume {name}")

    def migrate(self) -> None:
        """Apply migrations in a one-shot container against the stack's PostgreSQL."""
        self._require_running("postgres")
        (spec,) = [s for s in service_specs(self.settings) if s.name == "migrate"]
        self._run_one_shot(spec)

    def run_step(self, step: str, args: Sequence[str] = ()) -> int:
        """Run one demo step in its own container with the state dir mounted; its exit code."""
        _refuse_unsafe_stripe(self.settings)
        self._require_running("postgres")
        state_dir = self.settings.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        volumes = {str(state_dir): {"bind": STATE_MOUNT, "mode": "rw"}}
        if step == "scenario":  # the scenario files are the checkout's, not the image's
            scenarios = source_dir(self.settings) / "scenarios"
            volumes[str(scenarios)] = {"bind": SCENARIOS_MOUNT, "mode": "ro"}
            args = ["--dir", SCENARIOS_MOUNT, *args]
        spec = step_spec(self.settings, step, args)
        container = self._create(
            spec,
            name=f"{self.settings.container_name(spec.name)}-{uuid.uuid4().hex[:8]}",
            volumes=volumes,
            user=self.settings.step_user,
        )
        try:
            container.start()
            for chunk in container.logs(stream=True, follow=True):
                sys.stdout.write(chunk.decode("utf-8", errors="replace"))
                sys.stdout.flush()
            return int(container.wait()["StatusCode"])
        finally:
            container.remove(force=True)

    def still_running(self) -> list[str]:
        """The running containers of the stack, with the host ports they publish."""
        label = f"{LABEL_PROJECT}={self.settings.project}"
        parts: list[str] = []
        for container in self.client.containers.list(filters={"label": label}):
            service = container.labels.get(LABEL_SERVICE, container.name)
            ports = container.attrs.get("NetworkSettings", {}).get("Ports") or {}
            urls = [
                f"127.0.0.1:{binding['HostPort']}"
                for bindings in ports.values()
                for binding in bindings or []
            ]
            where = ", ".join(sorted(set(urls))) or "no published port"
            if service == "api" and urls:
                where = f"http://{urls[0]}  (API docs: http://{urls[0]}/docs)"
            parts.append(f"{service:<16} {where}  (container {container.name})")
        return sorted(parts)

    # -- helpers -------------------------------------------------------------------------

    def published_url(self, service: str, container_port: int) -> str:
        """`http://127.0.0.1:<host port>` of a running service's published port."""
        container = self._get(service)
        if container is None:
            raise RunnerError(f"{self.settings.container_name(service)} is not running")
        container.reload()
        bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{container_port}/tcp")
        if not bindings:
            raise RunnerError(f"{service} publishes no port {container_port}")
        return f"http://127.0.0.1:{bindings[0]['HostPort']}"

    def _labels(self, service: str) -> dict[str, str]:
        return {LABEL_PROJECT: self.settings.project, LABEL_SERVICE: service}

    def _get(self, service: str) -> Any:
        from docker.errors import NotFound

        try:
            return self.client.containers.get(self.settings.container_name(service))
        except NotFound:
            return None

    def _require_running(self, service: str) -> None:
        container = self._get(service)
        if container is None or container.status != "running":
            raise RunnerError(
                f"the docker stack is not up ({self.settings.container_name(service)} is not "
                "running): run `invoke up --runner docker` first"
            )

    def _ensure_image(self, image: str, variable: str) -> None:
        from docker.errors import APIError, ImageNotFound

        try:
            self.client.images.get(image)
        except ImageNotFound:
            print(f"image: pulling {image}", flush=True)
            try:
                self.client.images.pull(image)
            except APIError as exc:
                raise RunnerError(
                    f"cannot pull {image} ({exc.explanation or exc}); set {variable} to a "
                    "local image"
                ) from None

    def _ensure_network(self) -> None:
        from docker.errors import NotFound

        try:
            self.client.networks.get(self.settings.network)
        except NotFound:
            self.client.networks.create(
                self.settings.network, driver="bridge", labels=self._labels("network")
            )

    def _create(self, spec: ServiceSpec, name: str, **extra: Any) -> Any:
        """Create (not start) a container for `spec` on the project network."""
        from docker.errors import APIError

        healthcheck = None
        if spec.healthcheck is not None:
            healthcheck = {
                "test": ["CMD", *spec.healthcheck],
                "interval": 2 * SECOND_NS,
                "timeout": 5 * SECOND_NS,
                "retries": 5,
                "start_period": 60 * SECOND_NS,
            }
        network = self.settings.network
        mounts = {name: {"bind": path, "mode": "rw"} for name, path in spec.volumes.items()}
        mounts.update(extra.pop("volumes", {}))
        try:
            return self.client.containers.create(
                spec.image,
                command=list(spec.command) or None,
                name=name,
                environment=dict(spec.environment),
                labels=self._labels(spec.name),
                ports={f"{c}/tcp": ("127.0.0.1", h or None) for c, h in spec.ports.items()},
                healthcheck=healthcheck,
                network=network,
                volumes=mounts or None,
                networking_config={
                    network: self.client.api.create_endpoint_config(aliases=[spec.name])
                },
                detach=True,
                **extra,
            )
        except APIError as exc:
            raise RunnerError(f"cannot create {name}: {exc.explanation or exc}") from None

    def _prepare(self, spec: ServiceSpec) -> Any:
        """A created (not started) container for `spec`, or None when one already runs
        from the same image (so `up` twice keeps the running stack)."""
        current = self._get(spec.name)
        if current is not None:
            image_id = self.client.images.get(spec.image).id
            if current.status == "running" and current.image.id == image_id:
                return None
            current.remove(force=True, v=True)
        return self._create(spec, self.settings.container_name(spec.name))

    def _launch(self, spec: ServiceSpec, container: Any) -> None:
        """Start a container `_prepare` created (None: it was already running)."""
        from docker.errors import APIError

        if container is None:
            print(f"stack: {spec.name} already running", flush=True)
            return
        try:
            container.start()
        except APIError as exc:
            container.remove(force=True, v=True)
            raise RunnerError(start_failure(spec.name, str(exc.explanation or exc))) from None
        print(f"stack: started {spec.name}", flush=True)

    def _run_one_shot(self, spec: ServiceSpec) -> None:
        """Run a one-shot service (migrate) to completion; fail with its last log line."""
        name = self.settings.container_name(spec.name)
        stale = self._get(spec.name)
        if stale is not None:
            stale.remove(force=True)
        container = self._create(spec, name)
        try:
            container.start()
            code = int(container.wait(timeout=HEALTH_TIMEOUT_S)["StatusCode"])
            logs = container.logs().decode("utf-8", errors="replace")
        finally:
            container.remove(force=True)
        if code != 0:
            sys.stderr.write(logs)
            raise RunnerError(f"{spec.name} exited {code}: {_last_line(logs)}")
        print(f"stack: {spec.name} done", flush=True)

    def _wait_healthy(self, spec: ServiceSpec) -> None:
        """Wait (bounded, with progress) until the container's health check passes."""
        container = self._get(spec.name)
        if container is None:
            raise RunnerError(f"{self.settings.container_name(spec.name)} disappeared")
        started = time.monotonic()
        next_note = started + 10
        while True:
            container.reload()
            state = container.attrs["State"]
            if state["Status"] in ("exited", "dead"):
                logs = container.logs(tail=30).decode("utf-8", errors="replace")
                sys.stderr.write(logs)
                raise RunnerError(
                    f"{spec.name} exited {state.get('ExitCode')} before becoming healthy: "
                    f"{_last_line(logs)} (logs: docker logs {container.name})"
                )
            if state.get("Health", {}).get("Status") == "healthy":
                print(f"stack: {spec.name} healthy", flush=True)
                return
            now = time.monotonic()
            if now - started > HEALTH_TIMEOUT_S:
                raise RunnerError(
                    f"{spec.name} not healthy after {HEALTH_TIMEOUT_S:.0f} s "
                    f"(logs: docker logs {container.name})"
                )
            if now >= next_note:
                print(f"stack: waiting for {spec.name} ({now - started:.0f} s)", flush=True)
                next_note = now + 10
            time.sleep(0.5)


def start_failure(service: str, reason: str) -> str:
    """Why `service` did not start; a taken host port names the variable that moves it."""
    message = f"cannot start {service}: {_last_line(reason)}"
    variable = PORT_VARIABLES.get(service)
    if variable and any(taken in reason.lower() for taken in PORT_TAKEN):
        message += (
            f"; another program holds its host port: set {variable} to another port "
            "(or 0 for any free one) in the environment or .env"
        )
    return message


def _refuse_unsafe_stripe(settings: DockerSettings) -> None:
    """Refuse a live (or non-test) key before any container can call Stripe with it."""
    try:
        resolve_stripe_target(settings.stripe_secret_key, settings.stripe_api_base)
    except StripeConfigError as exc:
        raise RunnerError(f"refused: {exc}") from None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
