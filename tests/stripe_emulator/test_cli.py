"""`stripe-emulator` console script: serves on 127.0.0.1, clean one-line failures."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import requests

from tests.support.servers import free_port

CMD = [sys.executable, "-m", "stripe_emulator.cli"]


def test_serves_health_and_api_on_loopback() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*CMD, "--port", str(port), "--advance-delay-ms", "10"], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                resp = requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None, "emulator exited early"
                assert time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.05)
        assert resp.json() == {"status": "ok"}
        made = requests.post(
            f"http://127.0.0.1:{port}/v1/customers",
            data={"email": "cli@example.com"},
            headers={"Authorization": "Bearer sk_test_cli"},
            timeout=5,
        )
        assert made.json()["email"] == "cli@example.com"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_port_in_use_is_one_line_error_and_nonzero_exit() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [*CMD, "--port", str(port)], capture_output=True, text=True, timeout=30
        )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"stripe-emulator: error: port {port} on 127.0.0.1 is already in use"]


def test_bad_option_value_exits_nonzero_without_traceback() -> None:
    done = subprocess.run([*CMD, "--port", "70000"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "invalid port 70000" in done.stderr
    assert "Traceback" not in done.stderr
