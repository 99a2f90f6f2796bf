"""`/health/ready` while Stripe stops answering: degraded (200) naming Stripe and its URL,
healthy again once it answers, and the probe cached so readiness does not hammer Stripe.
A real HTTP server on 127.0.0.1 stands for Stripe; the API is real, over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from stripemeter.api.app import create_app
from stripemeter.config import load_settings
from tests.support.servers import free_port, serve_asgi


class _Stripe(BaseHTTPRequestHandler):
    """Answers every GET 404 (as Stripe answers its bare address), counting them."""

    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(404)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _stripe_on(port: int) -> Iterator[None]:
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer(("127.0.0.1", port), _Stripe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def _api(db_url: str, stripe_base: str, cache_s: float) -> Iterator[str]:
    settings = load_settings(
        BYPASS_AUTH=True, STRIPE_API_BASE=stripe_base, STRIPE_HEALTH_CACHE_S=cache_s
    )
    with serve_asgi(create_app(settings, db_url=db_url)) as base:
        yield base


def _ready(base: str) -> requests.Response:
    return requests.get(base + "/health/ready", timeout=10)


def _ready_when(base: str, status: str, timeout_s: float = 10) -> requests.Response:
    """The first readiness answer with this status: a stale result is served while the
    background probe refreshes it, so the change shows on a later check."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = _ready(base)
        if answer.json()["status"] == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_ready_is_degraded_naming_stripe_and_its_url_while_it_is_down_then_healthy(
    db_url: str,
) -> None:
    port = free_port()
    stripe = f"http://127.0.0.1:{port}"
    with _api(db_url, stripe, cache_s=0.2) as base:
        with _stripe_on(port):
            up = _ready(base)
        time.sleep(0.3)  # past the cache
        down = _ready_when(base, "degraded")
        with _stripe_on(port):
            again = _ready_when(base, "healthy")

    assert up.status_code == 200
    assert up.json()["status"] == "healthy" and up.json()["reasons"] == []
    assert up.json()["checks"]["stripe"] == {
        "status": "ok",
        "detail": f"Stripe at {stripe} answers",
    }

    assert down.status_code == 200
    body = down.json()
    detail = f"Stripe unreachable at {stripe}: connection failed"
    assert (body["status"], body["reasons"]) == ("degraded", [f"stripe: {detail}"])
    assert body["checks"]["stripe"] == {"status": "degraded", "detail": detail}
    assert body["checks"]["database"]["status"] == "ok"

    assert again.status_code == 200
    assert (again.json()["status"], again.json()["reasons"]) == ("healthy", [])


def test_the_stripe_probe_is_cached_between_readiness_checks(db_url: str) -> None:
    port = free_port()
    _Stripe.hits = 0
    with _stripe_on(port), _api(db_url, f"http://127.0.0.1:{port}", cache_s=30) as base:
        answers = [_ready(base) for _ in range(5)]
    assert [a.json()["status"] for a in answers] == ["healthy"] * 5
    assert _Stripe.hits == 1


def test_a_stripe_that_accepts_but_never_answers_is_degraded_within_the_probe_timeout(
    db_url: str,
) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never reads or answers
    stripe = f"http://127.0.0.1:{silent.getsockname()[1]}"
    try:
        with _api(db_url, stripe, cache_s=30) as base:
            started = time.monotonic()
            answer = _ready(base)
            took = time.monotonic() - started
    finally:
        silent.close()
    assert answer.status_code == 200 and answer.json()["status"] == "degraded"
    assert answer.json()["reasons"] == [
        f"stripe: Stripe unreachable at {stripe}: no answer within 2 s"
    ]
    assert took < 5


def test_readiness_never_waits_on_a_stripe_that_started_hanging(db_url: str) -> None:
    """Known good, then Stripe accepts connections and never answers: every check still
    answers at once (the stale result, then degraded), never after the probe's 2 s."""
    import socket

    port = free_port()
    stripe = f"http://127.0.0.1:{port}"
    with _api(db_url, stripe, cache_s=0.2) as base:
        with _stripe_on(port):
            assert _ready(base).json()["status"] == "healthy"
        silent = socket.socket()
        silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        silent.bind(("127.0.0.1", port))
        silent.listen(8)
        try:
            time.sleep(0.3)  # past the cache
            took: list[float] = []
            statuses: list[str] = []
            deadline = time.monotonic() + 8
            while "degraded" not in statuses and time.monotonic() < deadline:
                started = time.monotonic()
                statuses.append(_ready(base).json()["status"])
                took.append(time.monotonic() - started)
                time.sleep(0.1)
        finally:
            silent.close()
    assert statuses[0] == "healthy" and statuses[-1] == "degraded"  # stale, then refreshed
    assert max(took) < 1.0, took
