"""The local runner: the demo's stack as background processes on this machine.

`up()` starts, each detached in its own session so it outlives the `invoke` process:
the embedded PostgreSQL (`stripemeter db start`, unless `DATABASE_URL` is set), the
Stripe emulator on 127.0.0.1 (`STRIPE_EMULATOR_PORT`; skipped when a
`STRIPE_SECRET_KEY` is set or `STRIPE_API_BASE` names another Stripe; its state is kept
in `STRIPEMETER_HOME/emulator`, so `down` then `up` finds it again), and the API with
its workers on the loopback port of `API_HOST`. Logs and pid files live under the demo
state dir (`logs/<name>.log`, `pids/<name>.pid`), and `runtime.json` records which
Stripe the stack uses, so a later `invoke validate` runs its step against the same one.

`up()` is idempotent: a service whose pid file names a live process that answers its
health check is left alone. `down()` stops only the processes its pid files name.
Every failure is a `RunnerError` with a one-line reason naming the log file to read.

Configuration is `StackSettings` (environment, then `.env`, then defaults); the processes
it starts inherit this process's environment plus the values those settings decided.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import requests

from stripemeter.config import current_environment
from stripemeter.errors import StripeConfigError
from stripemeter.stripe.client import resolve_stripe_target
from stripemeter_dev.processes import MARKERS, ProcessSupervisor, Service
from stripemeter_dev.runner import STEP_NAMES, RunnerError
from stripemeter_dev.settings import StackSettings

EMULATOR_START_TIMEOUT_S = 30.0
API_START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
PROGRESS_EVERY_S = 2.0
RUNTIME_FILE = "runtime.json"
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


class LocalRunner:
    """Runs the stack and the steps as processes on this machine (see module docstring)."""

    name = "local"

    def __init__(
        self,
        settings: StackSettings | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        out: TextIO | None = None,
    ) -> None:
        """`environ` (default: this process's) is what started processes inherit, and
        what `settings` are read from when not given."""
        self.environ = current_environment() if environ is None else dict(environ)
        self.settings = settings or StackSettings.load(self.environ)
        self.out = out or sys.stdout
        self.state_dir = Path(self.settings.DEMO_STATE_DIR).resolve()
        self.logs_dir = self.state_dir / "logs"
        self.pids_dir = self.state_dir / "pids"
        self.processes = ProcessSupervisor(self.logs_dir, self.pids_dir, self._say)
        self.emulator_state_dir = Path(self.settings.STRIPEMETER_HOME).resolve() / "emulator"

    # -- the Runner protocol ---------------------------------------------------------

    def up(self) -> None:
        """Start PostgreSQL, the emulator (unless a Stripe key is set), API and workers."""
        _, stripe_base, start_emulator = self._stripe_plan()
        api_host, api_port = self._api_address()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.pids_dir.mkdir(parents=True, exist_ok=True)

        emulator_ready = self.processes.launch(self._emulator_service()) if start_emulator else None
        db_url = self._start_database()
        if emulator_ready is not None:
            emulator_ready()
        api_env = self.api_env(db_url, stripe_base)
        recorded = self._read_runtime()
        if recorded and recorded.get("stripeApiBase") != stripe_base:
            # The API (and its writer) must talk to the Stripe the steps will use.
            self.processes.stop("api")
        self.processes.ensure(
            Service(
                name="api",
                argv=[
                    *self._command("stripemeter"),
                    "api",
                    "--host",
                    api_host,
                    "--port",
                    str(api_port),
                ],
                health_url=f"http://{api_host}:{api_port}/health/ready",
                marker=MARKERS["api"],
                timeout_s=API_START_TIMEOUT_S,
                env=api_env,
                port_hint="set API_HOST to another loopback port, e.g. "
                f"API_HOST=localhost:{api_port + 1}",
            )
        )
        self._write_runtime({"stripeApiBase": stripe_base, "api": f"{api_host}:{api_port}"})
        where = stripe_base or "test mode (api.stripe.com)"
        self._say(f"up: API http://{api_host}:{api_port}, Stripe {where}, logs in {self.logs_dir}")

    def down(self) -> None:
        """Stop the API and the emulator started by `up()`, then the embedded PostgreSQL."""
        for name in ("api", "emulator"):
            self.processes.stop(name)
        if not self.settings.DATABASE_URL:
            said = self._cli(["db", "stop"], "stopping the embedded PostgreSQL").strip()
            self._say(f"down: {said.splitlines()[-1] if said else 'embedded PostgreSQL stopped'}")

    def emulator_reset(self) -> None:
        """Empty the emulator: through `/_emulator/reset` when it runs, else on disk."""
        port = self.settings.STRIPE_EMULATOR_PORT
        url = f"http://127.0.0.1:{port}"
        if self.processes.running("emulator"):
            try:
                requests.post(f"{url}/_emulator/reset", timeout=10).raise_for_status()
            except requests.RequestException as exc:
                raise RunnerError(f"could not reset the emulator at {url}: {exc}") from None
            self._say(f"emulator-reset: emptied the running emulator at {url} (and its state)")
            return
        from stripe_emulator.persistence import delete_state

        try:
            found = delete_state(self.emulator_state_dir)
        except OSError as exc:
            raise RunnerError(f"could not delete the emulator state: {exc}") from None
        if found:
            self._say(
                f"emulator-reset: deleted the stored emulator state in {self.emulator_state_dir}"
            )
        else:
            self._say(f"emulator-reset: no stored emulator state in {self.emulator_state_dir}")

    def migrate(self) -> None:
        """Apply database migrations (what `stripemeter migrate` does, in this process).

        In-process because a fresh interpreter costs seconds on a busy machine and the
        demo calls this on every run; the migrations are idempotent and serialised by
        an advisory lock, so racing the API's own start-up migration is safe.
        """
        import psycopg

        from stripemeter.db import connect, database_url
        from stripemeter.db.migrate import apply_migrations
        from stripemeter.errors import DatabaseUnavailable, EmbeddedDatabaseError

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                url = database_url(self.settings)
            with connect(url) as conn:
                applied = apply_migrations(conn)
        except (DatabaseUnavailable, EmbeddedDatabaseError, psycopg.Error) as exc:
            raise RunnerError(f"applying migrations failed: {_one_line(str(exc))}") from None
        self._say(f"migrate: {'applied ' + ', '.join(applied) if applied else 'schema up to date'}")

    def run_step(self, step: str, args: Sequence[str] = ()) -> int:
        """Run `python -m steps.<step> *args` with the stack's environment; its exit code."""
        if step not in STEP_NAMES:
            raise RunnerError(f"unknown step {step!r}: one of {', '.join(STEP_NAMES)}")
        self._stripe_plan()  # refuses live keys before any step can call Stripe
        env = self.step_env()
        for stream in (self.out, sys.stdout, sys.stderr):
            stream.flush()
        try:
            completed = subprocess.run(
                [sys.executable, "-m", f"steps.{step}", *args], env=env, check=False
            )
        except OSError as exc:
            raise RunnerError(f"could not run step {step}: {exc}") from None
        return completed.returncode

    def still_running(self) -> list[str]:
        """The API (with its docs), the emulator and the embedded PostgreSQL, if they run."""
        parts: list[str] = []
        if self.processes.running("api"):
            host, port = self._api_address()
            url = f"http://{host}:{port}"
            parts.append(f"API and workers  {url}  (API docs: {url}/docs)")
        if self.processes.running("emulator"):
            port = self.settings.STRIPE_EMULATOR_PORT
            parts.append(f"Stripe emulator  http://127.0.0.1:{port}")
        if not self.settings.DATABASE_URL and self._running_database_url():
            pgdata = Path(self.settings.STRIPEMETER_HOME).resolve() / "pgdata"
            parts.append(f"PostgreSQL       embedded, Unix socket, data in {pgdata}")
        return parts

    # -- environment -----------------------------------------------------------------

    def api_env(self, db_url: str, stripe_base: str | None) -> dict[str, str]:
        """The environment the API (and its workers) runs with."""
        env = self._service_env()
        env.update(self.settings.service_environment())
        env["BYPASS_AUTH"] = "1"
        env["DATABASE_URL"] = db_url
        if stripe_base is not None:
            env["STRIPE_API_BASE"] = stripe_base
        if self.settings.STRIPE_SECRET_KEY:
            env["STRIPE_SECRET_KEY"] = self.settings.STRIPE_SECRET_KEY
        return env

    def step_env(self) -> dict[str, str]:
        """The environment a step runs with: state dir, API, Stripe, database, epsilon."""
        env = self._service_env()
        env["DEMO_STATE_DIR"] = str(self.state_dir)
        env["API_HOST"] = self.settings.API_HOST
        env["RECONCILIATION_EPSILON"] = str(self.settings.RECONCILIATION_EPSILON)
        if self.settings.STRIPE_SECRET_KEY:
            env["STRIPE_SECRET_KEY"] = self.settings.STRIPE_SECRET_KEY
        base = self.settings.STRIPE_API_BASE or self._recorded_stripe_base()
        if base:
            env["STRIPE_API_BASE"] = base
        db_url = self.settings.DATABASE_URL or self._running_database_url()
        if db_url:
            env["DATABASE_URL"] = db_url
        return env

    def _service_env(self) -> dict[str, str]:
        env = dict(self.environ)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _stripe_plan(self) -> tuple[str, str | None, bool]:
        """(key, base URL or None for real Stripe, whether to start the emulator)."""
        key = self.settings.STRIPE_SECRET_KEY
        explicit_base = self.settings.STRIPE_API_BASE
        try:
            resolved_key, _ = resolve_stripe_target(key, explicit_base)
        except StripeConfigError as exc:
            raise RunnerError(f"refused: {exc}") from None
        if key:
            return resolved_key, explicit_base, False
        if explicit_base:
            return resolved_key, explicit_base, False
        return resolved_key, f"http://127.0.0.1:{self.settings.STRIPE_EMULATOR_PORT}", True

    def _emulator_service(self) -> Service:
        port = self.settings.STRIPE_EMULATOR_PORT
        argv = [
            *self._command("stripe-emulator"),
            "--state-dir",
            str(self.emulator_state_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        delay = self.settings.STRIPE_EMULATOR_ADVANCE_DELAY_MS
        if delay is not None:
            argv += ["--advance-delay-ms", str(delay)]
        return Service(
            name="emulator",
            argv=argv,
            health_url=f"http://127.0.0.1:{port}/_emulator/health",
            marker=MARKERS["emulator"],
            timeout_s=EMULATOR_START_TIMEOUT_S,
            env=self._service_env(),
            port_hint="set STRIPE_EMULATOR_PORT to another port, e.g. "
            f"STRIPE_EMULATOR_PORT={port + 1}",
        )

    def _api_address(self) -> tuple[str, int]:
        """The loopback host and port `API_HOST` names (the local runner binds loopback)."""
        parts = urlsplit(self.settings.api_base_url)
        host = parts.hostname or "localhost"
        try:
            port = parts.port or 80
        except ValueError:
            raise RunnerError(f"API_HOST has a bad port: {self.settings.API_HOST!r}") from None
        if host in LOOPBACK_NAMES:
            return "127.0.0.1", port
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(host).is_loopback:
                return host, port
        raise RunnerError(
            f"API_HOST={self.settings.API_HOST!r} is not a loopback address; the local "
            "runner only serves on 127.0.0.1 (use e.g. API_HOST=localhost:3000)"
        )

    def _command(self, script: str) -> list[str]:
        """The console script installed next to this Python, else one on PATH."""
        beside = Path(sys.executable).parent / script
        if beside.exists():
            return [str(beside)]
        found = shutil.which(script)
        if found:
            return [found]
        raise RunnerError(f"the `{script}` command is not installed; run `pip install -e .`")

    # -- database --------------------------------------------------------------------

    def _start_database(self) -> str:
        if self.settings.DATABASE_URL:
            return self.settings.DATABASE_URL
        running = self._running_database_url()
        if running:
            return running
        self._say("up: starting the embedded PostgreSQL")
        self._cli(["db", "start"], "starting the embedded PostgreSQL")
        url = self._running_database_url()
        if not url:
            raise RunnerError(
                "the embedded PostgreSQL did not stay up; see "
                f"{Path(self.settings.STRIPEMETER_HOME).resolve() / 'pgdata' / 'log'}"
            )
        return url

    def _running_database_url(self) -> str | None:
        from stripemeter.db import embedded

        try:
            with warnings.catch_warnings():  # pgserver's platformdirs warns on import
                warnings.simplefilter("ignore")
                return embedded.running_url(self.settings)
        except Exception:  # a broken pgdata reads as "not running"
            return None

    def _cli(self, args: list[str], doing: str, env: dict[str, str] | None = None) -> str:
        """Run `stripemeter <args>`; a failure is a RunnerError with its last output line."""
        try:
            completed = subprocess.run(
                [*self._command("stripemeter"), *args],
                env=env or self._service_env(),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RunnerError(f"{doing} failed: {exc}") from None
        if completed.returncode != 0:
            lines = (completed.stderr.strip() or completed.stdout.strip()).splitlines()
            reason = lines[-1] if lines else f"exit {completed.returncode}"
            raise RunnerError(f"{doing} failed: {reason}")
        return completed.stdout

    # -- runtime record ----------------------------------------------------------------

    def _write_runtime(self, data: dict[str, Any]) -> None:
        path = self.state_dir / RUNTIME_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)

    def _read_runtime(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.state_dir / RUNTIME_FILE).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _recorded_stripe_base(self) -> str | None:
        """The Stripe base `up()` recorded, when no key is set (the emulator it started)."""
        if self.settings.STRIPE_SECRET_KEY:
            return None
        base = (self._read_runtime() or {}).get("stripeApiBase")
        return base if isinstance(base, str) and base else None

    def _say(self, message: str) -> None:
        print(message, file=self.out, flush=True)


def _one_line(text: str) -> str:
    return " ".join(text.split())
