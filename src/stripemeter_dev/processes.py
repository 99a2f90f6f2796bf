"""Background services of the local runner: start detached, wait for health, stop.

Each service runs in its own session so it outlives the `invoke` process; its pid is
kept in `pids/<name>.pid` and its output in `logs/<name>.log`. A pid file is trusted
only while that process is alive and its command line contains the service's marker,
so a recycled pid is never mistaken for (or killed as) one of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests

from stripemeter_dev.runner import RunnerError

STOP_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 2.0
# The word each service's command line contains (see the module docstring).
MARKERS = {"api": "stripemeter", "emulator": "stripe-emulator"}


@dataclass(frozen=True)
class Service:
    """A background process `up()` manages: how to start it and how to know it is up."""

    name: str
    argv: list[str]
    health_url: str
    marker: str  # a word its command line contains, so a reused pid is not mistaken for it
    timeout_s: float
    env: dict[str, str]
    # What to change when its port is taken: "set <VARIABLE> to another port, e.g. ...".
    port_hint: str = "choose another port"


class ProcessSupervisor:
    """Starts, watches and stops the local runner's background services."""

    def __init__(self, logs_dir: Path, pids_dir: Path, say: Callable[[str], None]) -> None:
        self.logs_dir = logs_dir
        self.pids_dir = pids_dir
        self._say = say

    def ensure(self, service: Service) -> None:
        """Start `service` unless it already runs and answers; wait until it is healthy."""
        self.launch(service)()

    def launch(self, service: Service) -> Callable[[], None]:
        """Start `service` unless it already runs and answers; return a wait for health.

        Launching and waiting are split so a slow start (the emulator's) can overlap
        other work (starting PostgreSQL).
        """
        pid = self._live_pid(service.name, service.marker)
        if pid is not None:
            if _healthy(service.health_url):
                self._say(f"up: {service.name} already running (pid {pid})")
                return lambda: None
            return lambda: self._wait_healthy(service, pid, None)
        if _healthy(service.health_url):
            self._say(f"up: {service.name} already answers at {service.health_url}; reusing it")
            return lambda: None
        address = urlsplit(service.health_url)
        if _port_in_use(address.hostname or "127.0.0.1", address.port or 80):
            raise RunnerError(
                f"port {address.port} is in use by another program, so the {service.name} "
                f"cannot start there; {service.port_hint} (in the environment or .env)"
            )
        log_path = self.logs_dir / f"{service.name}.log"
        with log_path.open("ab") as log:
            log.write(f"\n--- started {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n".encode())
            log.flush()
            try:
                process = subprocess.Popen(
                    service.argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=service.env,
                    start_new_session=True,
                )
            except OSError as exc:
                raise RunnerError(f"could not start the {service.name}: {exc}") from None
        self._pid_file(service.name).write_text(f"{process.pid}\n")
        self._say(f"up: started the {service.name} (pid {process.pid}, log {log_path})")
        return lambda: self._wait_healthy(service, process.pid, process)

    def _wait_healthy(
        self, service: Service, pid: int, process: subprocess.Popen[bytes] | None
    ) -> None:
        log_path = self.logs_dir / f"{service.name}.log"
        started = time.monotonic()
        last_progress = started
        while True:
            if _healthy(service.health_url):
                waited = time.monotonic() - started
                self._say(f"up: {service.name} ready after {waited:.1f} s")
                return
            code = process.poll() if process is not None else None
            if code is not None or not _alive(pid):
                self._pid_file(service.name).unlink(missing_ok=True)
                how = f" with code {code}" if code is not None else ""
                raise RunnerError(
                    f"the {service.name} exited{how} during start-up: "
                    f"{_last_line(log_path)} (see {log_path})"
                )
            now = time.monotonic()
            if now - started > service.timeout_s:
                raise RunnerError(
                    f"the {service.name} did not answer {service.health_url} within "
                    f"{service.timeout_s:.0f} s (see {log_path})"
                )
            if now - last_progress >= PROGRESS_EVERY_S:
                self._say(f"up: waiting for the {service.name} ({now - started:.0f} s)")
                last_progress = now
            time.sleep(0.1)

    def stop(self, name: str) -> None:
        """Stop the process `pids/<name>.pid` names (its whole session), if it runs."""
        marker = MARKERS.get(name, "stripemeter")
        pid = self._live_pid(name, marker)
        pid_file = self._pid_file(name)
        if pid is None:
            pid_file.unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)  # its own session: the group is the service
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink(missing_ok=True)
        self._say(f"down: stopped the {name} (pid {pid})")

    def running(self, name: str) -> bool:
        """Whether the process `pids/<name>.pid` names is alive and is that service."""
        return self._live_pid(name, MARKERS.get(name, "stripemeter")) is not None

    def _live_pid(self, name: str, marker: str) -> int | None:
        """The pid in `pids/<name>.pid` if that process is alive and is the service."""
        try:
            pid = int(self._pid_file(name).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if not _alive(pid):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return pid  # no /proc: trust the pid file
        return pid if marker in cmdline else None

    def _pid_file(self, name: str) -> Path:
        return self.pids_dir / f"{name}.pid"


def _healthy(url: str) -> bool:
    """True when `url` answers 200 (readiness `degraded` still answers 200)."""
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _alive(pid: int) -> bool:
    """True when `pid` runs (reaping it first if it is our own exited child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log output"
    return lines[-1].strip()[:300] if lines else "no log output"
