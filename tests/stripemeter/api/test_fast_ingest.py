"""The ingest fast path (`api.fast_ingest`) answers exactly as the FastAPI route does.

Two apps on one database and one key: the default one (fast path) and one built with
`fast_ingest=False` (FastAPI's routing). The same bad request sent to both gets the same
status, the same content type and the same body, byte for byte.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import psycopg
import pytest
import requests
from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stripemeter.api.app import create_app
from stripemeter.api.fast_ingest import INGEST_PATH, ServiceApp, check_served_alone
from stripemeter.api.query_guard import api_routes
from stripemeter.auth import ALL_SCOPES, create_api_key
from stripemeter.config import load_settings
from stripemeter.ingest.validation import MAX_HEADER_KEY_CHARS
from stripemeter.ops.metrics import REGISTRY
from tests.stripemeter.conftest import event
from tests.support.databases import fresh_database
from tests.support.servers import serve_asgi


@dataclass
class Pair:
    fast: str
    framework: str
    tenant: str
    secret: str


@pytest.fixture(scope="module")
def pair(pg_server_url: str) -> Iterator[Pair]:
    with fresh_database(pg_server_url) as url:
        tenant = str(uuid.uuid4())
        with psycopg.connect(url) as conn:
            key = create_api_key(conn, tenant, "tests", scopes=ALL_SCOPES)
        settings = load_settings(BYPASS_AUTH=False)
        fast_app = create_app(settings, db_url=url)
        framework_app = create_app(settings, db_url=url, fast_ingest=False)
        assert getattr(fast_app, "ingest_front", None) is not None
        assert getattr(framework_app, "ingest_front", None) is None
        with serve_asgi(fast_app) as fast, serve_asgi(framework_app) as framework:
            yield Pair(fast, framework, tenant, key.secret)


def _post(base: str, data: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(base + INGEST_PATH, data=data, headers=headers, timeout=30)


def _same_answer(pair: Pair, data: bytes, headers: dict[str, str]) -> requests.Response:
    fast = _post(pair.fast, data, headers)
    framework = _post(pair.framework, data, headers)
    assert fast.status_code == framework.status_code
    assert fast.headers["content-type"] == framework.headers["content-type"]
    assert fast.content == framework.content
    return fast


def _auth(pair: Pair, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair.secret}", "Content-Type": "application/json", **more}


def _body(*events: dict[str, Any]) -> bytes:
    return orjson.dumps({"events": list(events)})


def _error(answer: requests.Response) -> dict[str, Any]:
    error: dict[str, Any] = answer.json()["error"]
    return error


def test_unknown_field_is_the_same_400(pair: Pair) -> None:
    answer = _same_answer(pair, _body(event(pair.tenant, colour="red")), _auth(pair))
    assert answer.status_code == 400
    assert _error(answer)["field"] == "events[0].colour"
    assert answer.json()["errors"][0]["index"] == 0


def test_wrong_type_is_the_same_400(pair: Pair) -> None:
    answer = _same_answer(pair, _body(event(pair.tenant, quantity=[1])), _auth(pair))
    assert answer.status_code == 400
    assert _error(answer)["field"] == "events[0].quantity"


def test_unknown_key_is_the_same_401(pair: Pair) -> None:
    headers = _auth(pair)
    headers["Authorization"] = "Bearer sk_not_a_real_key"
    answer = _same_answer(pair, _body(event(pair.tenant)), headers)
    assert answer.status_code == 401
    assert _error(answer) == {
        "code": "unauthorized",
        "message": "unknown or revoked API key",
        "field": "Authorization",
    }


def test_missing_key_is_the_same_401(pair: Pair) -> None:
    answer = _same_answer(pair, _body(event(pair.tenant)), {"Content-Type": "application/json"})
    assert answer.status_code == 401
    assert _error(answer)["field"] == "Authorization"


def test_body_over_the_limit_is_the_same_413(pair: Pair) -> None:
    big = _body(event(pair.tenant, meta={"pad": "x" * (1024 * 1024)}))
    answer = _same_answer(pair, big, _auth(pair))
    assert answer.status_code == 413
    assert _error(answer)["code"] == "payload_too_large"


def test_invalid_json_and_media_type_are_the_same(pair: Pair) -> None:
    assert _same_answer(pair, b'{"events": [', _auth(pair)).status_code == 400
    answer = _same_answer(
        pair, _body(event(pair.tenant)), _auth(pair, **{"Content-Type": "text/csv"})
    )
    assert answer.status_code == 415
    assert _same_answer(pair, b'{"events": []}', _auth(pair)).status_code == 400


def test_foreign_tenant_is_the_same_403(pair: Pair) -> None:
    answer = _same_answer(pair, _body(event(str(uuid.uuid4()))), _auth(pair))
    assert answer.status_code == 403
    assert _error(answer)["code"] == "forbidden_tenant"


def test_bad_idempotency_header_is_the_same_400(pair: Pair) -> None:
    headers = _auth(pair, **{"Idempotency-Key": "k" * (MAX_HEADER_KEY_CHARS + 1)})
    answer = _same_answer(pair, _body(event(pair.tenant)), headers)
    assert answer.status_code == 400
    assert _error(answer)["field"] == "Idempotency-Key"


def test_idempotency_key_reuse_is_the_same_409(pair: Pair) -> None:
    headers = _auth(pair, **{"Idempotency-Key": "reuse-1"})
    first = _post(pair.fast, _body(event(pair.tenant, idempotencyKey="r-a")), headers)
    assert first.status_code == 200
    other = _body(event(pair.tenant, idempotencyKey="r-b"))
    answer = _same_answer(pair, other, headers)
    assert answer.status_code == 409
    assert _error(answer)["code"] == "idempotency_key_reused"


def test_accepted_answers_have_the_same_shape_and_are_counted_by_route(pair: Pair) -> None:
    def served(status: str) -> float:
        labels = {"method": "POST", "route": INGEST_PATH, "status": status}
        return REGISTRY.get_sample_value("stripemeter_http_requests_total", labels) or 0.0

    before = served("200")
    fast = _post(pair.fast, _body(event(pair.tenant, idempotencyKey="ok-1")), _auth(pair))
    framework = _post(pair.framework, _body(event(pair.tenant, idempotencyKey="ok-1")), _auth(pair))
    assert (fast.status_code, framework.status_code) == (200, 200)
    fast_body, framework_body = fast.json(), framework.json()
    assert fast_body.keys() == framework_body.keys()
    assert fast_body["results"][0]["status"] == "accepted"
    assert framework_body["results"][0]["status"] == "duplicate"
    assert served("200") == before + 2


def test_a_query_string_goes_to_the_query_guard(pair: Pair) -> None:
    data, headers = _body(event(pair.tenant)), _auth(pair)
    fast = requests.post(pair.fast + INGEST_PATH + "?x=1", data=data, headers=headers, timeout=30)
    assert fast.status_code == 400
    assert _error(fast)["code"] == "unknown_query_parameter"


def test_chunked_body_over_the_limit_is_the_same_413(pair: Pair) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": [{"meta": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}]}'

    answers = [
        requests.post(base + INGEST_PATH, data=chunks(), headers=_auth(pair), timeout=30)
        for base in (pair.fast, pair.framework)
    ]
    assert [a.status_code for a in answers] == [413, 413]
    assert answers[0].content == answers[1].content
    assert _error(answers[0])["message"] == "request body exceeds the limit of 1048576 bytes"


def test_a_route_with_dependencies_is_refused_by_the_fast_path() -> None:
    async def extra() -> None:
        return None

    app = FastAPI()

    @app.post(INGEST_PATH, dependencies=[Depends(extra)])
    async def with_dependency(request: Request) -> None:
        return None

    served = create_app(load_settings(BYPASS_AUTH=False), db_url="postgresql://unused")
    route = next(r for r in api_routes(served) if r.path == INGEST_PATH)
    assert check_served_alone(route) is route
    with pytest.raises(RuntimeError, match="declares dependencies or parameters"):
        check_served_alone(api_routes(app)[0])


def _status(app: ASGIApp, method: str, path: str, query: bytes = b"") -> int:
    """The status `app` answers a body-less request with, driven as ASGI (no lifespan)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(b"host", b"testserver"), (b"content-length", b"0")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


def test_only_a_plain_ingest_post_takes_the_front_door() -> None:
    """`ServiceApp` hands `POST /v1/events/ingest` (no query) to its front; all else to FastAPI."""
    app = create_app(load_settings(BYPASS_AUTH=False), db_url="postgresql://unused")
    assert isinstance(app, ServiceApp)
    fronted: list[tuple[str, str, bytes]] = []

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        fronted.append((scope["method"], scope["path"], scope["query_string"]))
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app.ingest_front = front
    assert _status(app, "POST", INGEST_PATH) == 299
    assert _status(app, "GET", INGEST_PATH) == 405
    assert _status(app, "POST", INGEST_PATH, b"x=1") == 400  # the query guard
    assert _status(app, "POST", "/v1/events/ingested") == 404
    assert fronted == [("POST", INGEST_PATH, b"")]
