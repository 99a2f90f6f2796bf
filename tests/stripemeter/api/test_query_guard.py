"""Every route refuses a query parameter it does not take: 400 `unknown_query_parameter`
naming it, before anything is read or stored. The route list is the app's own, so a route
added later (here: one added after `create_app`, as other components do) is covered too."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fastapi import FastAPI, Query
from fastapi.routing import APIRoute

from stripemeter.api.app import create_app
from stripemeter.api.query_guard import api_routes, declared_query_names
from stripemeter.config import load_settings
from tests.stripemeter.conftest import Api, event, start_api
from tests.support.databases import fresh_database
from tests.support.servers import serve_asgi

DUMMY_ID = "00000000-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def served(pg_server_url: str) -> Iterator[tuple[Api, FastAPI]]:
    with fresh_database(pg_server_url) as url, start_api(url) as running:
        yield running, running.app


def _operations(app: FastAPI) -> list[tuple[str, str, APIRoute]]:
    return [
        (method, re.sub(r"\{[^}]+\}", DUMMY_ID, route.path), route)
        for route in api_routes(app)
        for method in sorted(route.methods)
    ]


def test_every_route_answers_400_naming_an_unknown_query_parameter(
    served: tuple[Api, FastAPI],
) -> None:
    api, app = served
    operations = _operations(app)
    documented = sum(len(item) for item in app.openapi()["paths"].values())
    assert len(operations) >= documented  # the walk covers every documented operation
    for method, path, _ in operations:
        answer = api.session.request(
            method, api.url(path), params={"startDate": "2026-01-01"}, timeout=30
        )
        assert answer.status_code == 400, (method, path, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "unknown_query_parameter", (method, path)
        assert error["field"] == "startDate"
        assert "'startDate'" in error["message"]


def test_every_route_accepts_each_query_parameter_it_declares(
    served: tuple[Api, FastAPI],
) -> None:
    api, app = served
    for method, path, route in _operations(app):
        for name in declared_query_names(route):
            answer = api.session.request(method, api.url(path), params={name: "x"}, timeout=30)
            if answer.status_code == 400:
                assert answer.json()["error"]["code"] != "unknown_query_parameter", (path, name)


def test_the_refusal_lists_what_the_route_takes(served: tuple[Api, FastAPI]) -> None:
    api, _ = served
    answer = api.get("/v1/usage", params={"metric": "api_calls", "start": "2026-01-01"})
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": "unknown_query_parameter",
        "message": "unknown query parameter 'start' for GET /v1/usage; it takes customerRef, "
        "from, metric, tenantId, to",
        "field": "start",
    }


def test_a_route_without_query_parameters_says_it_takes_none(
    served: tuple[Api, FastAPI],
) -> None:
    api, _ = served
    answer = requests.get(api.url("/health/live"), params={"verbose": "1"}, timeout=30)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"] == (
        "unknown query parameter 'verbose' for GET /health/live; it takes no query parameters"
    )


def test_an_unknown_parameter_on_ingest_stores_nothing(served: tuple[Api, FastAPI]) -> None:
    api, _ = served
    body = {"events": [event(api.tenant)]}
    answer = api.post("/v1/events/ingest", params={"dryRun": "true"}, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "dryRun"
    assert api.scalar("SELECT count(*) FROM events") == 0


def test_a_route_added_after_create_app_is_guarded(pg_server_url: str) -> None:
    app = create_app(load_settings(BYPASS_AUTH=True), db_url=pg_server_url)

    def late(size: int = Query(default=1)) -> dict[str, Any]:
        return {"size": size}

    app.add_api_route("/_test/late", late, methods=["GET"])
    with serve_asgi(app) as base:
        assert requests.get(base + "/_test/late", params={"size": 2}, timeout=30).json() == {
            "size": 2
        }
        refused = requests.get(base + "/_test/late", params={"sise": 2}, timeout=30)
        assert refused.status_code == 400
        assert refused.json()["error"]["field"] == "sise"


def test_the_refusal_is_documented_as_a_400_of_every_operation() -> None:
    document = create_app(load_settings()).openapi()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            described = operation["responses"].get("400", {}).get("description", "")
            assert "unknown_query_parameter" in described, (method, path)
