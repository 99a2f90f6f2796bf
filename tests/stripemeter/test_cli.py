"""The `stripemeter` command as users run it: a real subprocess, real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from stripemeter.db.migrate import available_migrations
from tests.support.databases import with_dbname
from tests.support.servers import free_port

SCRIPT = Path(sys.executable).with_name("stripemeter")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "stripemeter.cli"]


@pytest.fixture
def home() -> Iterator[Path]:
    """A short STRIPEMETER_HOME (Unix socket paths are limited to ~100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="smcli", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "BYPASS_AUTH") and not k.startswith("STRIPEMETER_")
    }
    env["STRIPEMETER_HOME"] = str(home)
    env.update(extra)
    return env


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `stripemeter *args` in `home` (so no stray .env is read)."""
    return subprocess.run(
        [*COMMAND, *args],
        cwd=home,
        env=_env(home, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout


def test_db_start_url_migrate_stop_on_the_embedded_server(home: Path) -> None:
    try:
        started = run(home, "db", "start")
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("embedded PostgreSQL running: postgresql://")
        url = run(home, "db", "url")
        assert url.returncode == 0
        assert str(home / "pgdata") in url.stdout
        first = run(home, "migrate")
        second = run(home, "migrate")
        assert first.returncode == 0 and first.stdout.startswith("applied: 0001_init.sql")
        assert (second.returncode, second.stdout.strip()) == (0, "schema up to date")
        with psycopg.connect(url.stdout.strip()) as conn:
            assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
    finally:
        stopped = run(home, "db", "stop")
    assert stopped.returncode == 0
    assert stopped.stdout.strip() == "embedded PostgreSQL stopped"
    again = run(home, "db", "stop")
    assert again.stdout.strip() == "embedded PostgreSQL was not running"


def test_api_keys_create_prints_the_secret_once_and_stores_its_hash(
    home: Path, db_url: str
) -> None:
    tenant = str(uuid.uuid4())
    result = run(
        home, "api-keys", "create", "--tenant", tenant, "--name", "ci", DATABASE_URL=db_url
    )
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("smk_") and "\n" not in secret
    assert f"for tenant {tenant}" in result.stderr
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT tenant_id::text, name, secret_sha256 FROM api_keys").fetchall()
    assert len(rows) == 1 and rows[0][:2] == (tenant, "ci")
    assert secret not in rows[0][2]


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (
            ["api", "--host", "0.0.0.0", "--no-workers"],
            {"BYPASS_AUTH": "1"},
            1,
            "error: BYPASS_AUTH=1 is refused when listening on 0.0.0.0",
        ),
        (["migrate"], {"BYPASS_AUTH": "maybe"}, 1, "error: invalid configuration: BYPASS_AUTH"),
        (
            ["migrate"],
            {"MAX_INGEST_BATCH": "0"},
            1,
            "error: invalid configuration: MAX_INGEST_BATCH",
        ),
        (
            ["migrate"],
            {"WRITER_TRANSPORT": "v3"},
            1,
            "error: invalid configuration: WRITER_TRANSPORT: Input should be 'v1' or 'v2'",
        ),
        (
            ["api-keys", "create", "--tenant", "acme\tcorp"],
            {},
            2,
            "--tenant must be 1 to 64 printable characters",
        ),
        (["api", "--port", "70000"], {}, 2, "port must be 1-65535"),
        (["db", "restart"], {}, 2, "invalid choice: 'restart'"),
        (
            ["migrate"],
            {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"},
            1,
            "error: cannot connect to PostgreSQL",
        ),
    ],
    ids=[
        "bypass-on-0.0.0.0",
        "bad-bool",
        "bad-batch",
        "bad-transport",
        "bad-tenant",
        "bad-port",
        "bad-action",
        "db-unreachable",
    ],
)
def test_bad_input_exits_non_zero_with_one_line(
    home: Path, args: list[str], env: dict[str, str], code: int, message: str
) -> None:
    result = run(home, *args, **env)
    assert result.returncode == code
    assert message in result.stderr
    _no_traceback(result)
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["workers"], ["api", "--port", "1"]])
def test_live_stripe_key_is_refused_before_the_database_starts(home: Path, args: list[str]) -> None:
    result = run(home, *args, STRIPE_SECRET_KEY="sk_live_123")
    assert result.returncode == 1
    assert "live-mode key" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    _no_traceback(result)
    assert not (home / "pgdata").exists()


def test_api_with_no_migrate_refuses_an_unmigrated_database(home: Path, pg_server_url: str) -> None:
    name = f"raw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        result = run(
            home,
            "api",
            "--no-migrate",
            "--no-workers",
            "--port",
            str(free_port()),
            DATABASE_URL=with_dbname(pg_server_url, name),
        )
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert result.returncode == 1
    assert "schema is not up to date (pending: 0001_init.sql" in result.stderr
    _no_traceback(result)


def _serve(home: Path, port: int, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, "api", "--port", str(port), "--no-workers"],
        cwd=home,
        env=_env(home, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_ready(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"api exited: {process.stdout.read() if process.stdout else ''}")
        try:
            if requests.get(base + "/health/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("api did not become ready")


def test_api_command_migrates_and_serves_with_auth(home: Path, pg_server_url: str) -> None:
    name = f"cli_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = with_dbname(pg_server_url, name)
    port = free_port()
    process = _serve(home, port, DATABASE_URL=url)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        tenant = str(uuid.uuid4())
        secret = run(home, "api-keys", "create", "--tenant", tenant, DATABASE_URL=url).stdout
        ev = {
            "tenantId": tenant,
            "metric": "api_calls",
            "customerRef": "c",
            "quantity": 2,
            "ts": "2026-11-20T10:00:00Z",
        }
        anonymous = requests.post(base + "/v1/events/ingest", json={"events": [ev]}, timeout=10)
        keyed = requests.post(
            base + "/v1/events/ingest",
            json={"events": [ev]},
            headers={"Authorization": f"Bearer {secret.strip()}"},
            timeout=10,
        )
        assert anonymous.status_code == 401
        assert keyed.status_code == 200 and keyed.json()["accepted"] == 1
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    assert "Traceback" not in output


def _children(pid: int) -> set[int]:
    """Every live descendant of `pid` (from /proc), zombies excluded."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            parents[int(entry.name)] = int(ppid)
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_kill_9_of_the_supervisor_takes_its_server_processes_with_it(
    home: Path, db_url: str
) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*COMMAND, "api", "--port", str(port), "--no-workers", "--workers-processes", "2"],
        cwd=home,
        env=_env(home, DATABASE_URL=db_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        children: set[int] = set()
        while time.monotonic() < deadline:
            assert process.poll() is None, "the supervisor exited during start-up"
            children = _children(process.pid)
            try:
                ready = requests.get(base + "/health/live", timeout=2).status_code == 200
            except requests.ConnectionError:
                ready = False
            if ready and len(children) >= 2:
                break
            time.sleep(0.2)
        assert len(children) >= 2, children
        children = _children(process.pid)

        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_running(pid) for pid in children):
            time.sleep(0.1)
        survivors = {pid for pid in children if _running(pid)}
        assert survivors == set()
        assert _port_free(port)
        with pytest.raises(requests.ConnectionError):
            requests.get(base + "/health/live", timeout=2)
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _workers_until_exit(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`stripemeter workers`, which must give up on its own: a hang fails the test."""
    try:
        return subprocess.run(
            [*COMMAND, "workers"],
            cwd=home,
            env=_env(home, STRIPE_API_BASE="http://127.0.0.1:9", **env),
            capture_output=True,
            text=True,
            timeout=60,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
        raise AssertionError(f"`stripemeter workers` kept running: {output}") from None


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    _no_traceback(result)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    return lines[0]


def test_workers_with_an_unusable_home_say_the_embedded_database_cannot_start(
    home: Path,
) -> None:
    (home / "a-file").write_text("not a directory\n")
    unusable = home / "a-file" / "home"
    result = _workers_until_exit(home, STRIPEMETER_HOME=str(unusable))
    line = _one_error_line(result)
    assert line.startswith(f"error: could not start the embedded PostgreSQL in {unusable}/pgdata")


def test_workers_with_an_unreachable_database_url_exit_with_one_line(home: Path) -> None:
    closed = f"postgresql://nobody@127.0.0.1:{free_port()}/none?connect_timeout=2"
    result = _workers_until_exit(home, DATABASE_URL=closed)
    line = _one_error_line(result)
    assert line.startswith("error: cannot connect to PostgreSQL")
    assert "Connection refused" in line


def test_workers_refuse_an_unmigrated_database(home: Path, pg_server_url: str) -> None:
    name = f"raw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        result = _workers_until_exit(home, DATABASE_URL=with_dbname(pg_server_url, name))
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    pending = ", ".join(m.name for m in available_migrations())
    assert _one_error_line(result) == (
        f"error: the database schema is not up to date (pending: {pending}); "
        "run `stripemeter migrate` first"
    )
