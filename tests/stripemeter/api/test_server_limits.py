"""The real `stripemeter api` process against raw sockets: huge headers, vanishing clients.

Issue 9, item 10: 8 MB of request headers were accepted, and a client dropping
mid-upload logged two "unexpected error" tracebacks.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import requests

from stripemeter.api.serving import MAX_HEADER_BYTES
from stripemeter.auth import create_api_key
from tests.stripemeter.test_cli import COMMAND, _env, _wait_ready
from tests.support.servers import free_port


@dataclass
class Served:
    """A `stripemeter api` subprocess: where it listens, its key, its log file."""

    host: str
    port: int
    secret: str
    log_path: Path
    process: subprocess.Popen[str]

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def served(pg_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from tests.support.databases import fresh_database

    home = tmp_path_factory.mktemp("serve")
    with fresh_database(pg_server_url) as url:
        with psycopg.connect(url) as conn:
            key = create_api_key(conn, str(uuid.uuid4()), "limits")
        port = free_port()
        log_path = home / "api.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [*COMMAND, "api", "--port", str(port), "--no-workers"],
                cwd=home,
                env=_env(home, DATABASE_URL=url),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            _wait_ready(f"http://127.0.0.1:{port}", process)
            yield Served("127.0.0.1", port, key.secret, log_path, process)
        finally:
            process.terminate()
            process.wait(timeout=30)


def _read_answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def test_a_client_dropping_mid_upload_is_not_an_error(served: Served) -> None:
    before = served.log()
    for _ in range(3):
        with socket.create_connection((served.host, served.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/events/ingest HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100000\r\n"
                + f"Authorization: Bearer {served.secret}\r\n\r\n".encode()
                + b'{"events":'
            )
            time.sleep(0.2)  # the server is now waiting for the rest of the body
    time.sleep(0.5)
    assert requests.get(served.base + "/health/live", timeout=10).status_code == 200
    added = served.log()[len(before) :]
    assert "Traceback" not in added
    assert "unexpected error" not in added
    assert "Exception in ASGI application" not in added


def test_eight_megabytes_of_headers_are_refused_and_the_server_stays_healthy(
    served: Served,
) -> None:
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        head = b"GET /health/live HTTP/1.1\r\nHost: x\r\n"
        sock.sendall(head)
        answer = b""
        try:
            for _ in range(8 * 16):  # 8 MB in 64 KiB lines
                sock.sendall(b"X-Filler: " + b"a" * (64 * 1024 - 12) + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _read_answer(sock)
    # The server refuses before reading much: 431, or the connection is reset under us.
    assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    if answer:
        assert b'"code":"headers_too_large"' in answer
    assert requests.get(served.base + "/health/live", timeout=10).status_code == 200


def test_headers_just_under_the_limit_are_served_and_just_over_get_431(served: Served) -> None:
    fits = requests.get(
        served.base + "/health/live", headers={"X-Big": "a" * (MAX_HEADER_BYTES - 4096)}, timeout=10
    )
    assert fits.status_code == 200
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEADER_BYTES)
        answer = _read_answer(sock)
    status, _, rest = answer.partition(b"\r\n")
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
    body = rest.split(b"\r\n\r\n", 1)[1]
    assert body == (
        b'{"error":{"code":"headers_too_large","message":"request headers exceed '
        + str(MAX_HEADER_BYTES).encode()
        + b' bytes; send smaller headers","field":null}}'
    )
    assert requests.get(served.base + "/health/live", timeout=10).status_code == 200


def _read_until(sock: socket.socket, count: int, marker: bytes) -> bytes:
    """Read until `marker` has been seen `count` times (or the peer closes)."""
    data = b""
    while data.count(marker) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_pipelined_requests_get_whole_answers_in_order(served: Served) -> None:
    # Writes are collected per event-loop step (api.serving.CoalescingTransport): two
    # requests in one segment still get two complete answers, in order.
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        sock.sendall(
            b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        data = _read_until(sock, 2, b"HTTP/1.1 ")
        while data.count(b"}") < 2 or not data.endswith(b"}"):
            data += sock.recv(65536)
    first, second = data.split(b"HTTP/1.1 ")[1:]
    assert first.startswith(b"200 OK") and b'"status":"ok"' in first
    assert second.startswith(b"404 Not Found") and b'"code":"not_found"' in second


def test_head_and_expect_continue_are_answered(served: Served) -> None:
    with socket.create_connection((served.host, served.port), timeout=10) as sock:
        sock.sendall(b"HEAD /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        head = _read_until(sock, 1, b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 ")
        body = b'{"events": []}'
        sock.sendall(
            b"POST /v1/events/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + served.secret.encode() + b"\r\n"
            b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert _read_until(sock, 1, b"\r\n\r\n").startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        answer = _read_until(sock, 1, b"}}")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")
