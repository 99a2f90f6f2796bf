"""The API's one handler of `StripemeterError`: each branch of the tree, over real HTTP.

A route added to the real app raises the exception a route might let through; the
answer is the JSON error body with the status its class earns, never a traceback.
(Here rather than under `tests/stripemeter/api/` only because of who owns which file
while issue 10 is worked on; it tests `stripemeter.api.errors`.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fastapi import FastAPI

from stripemeter.api.app import create_app
from stripemeter.api.errors import ApiError
from stripemeter.config import load_settings
from stripemeter.errors import (
    BindingConflict,
    ConfigError,
    DatabaseTimeout,
    DatabaseUnavailable,
    InputError,
    ReconciliationError,
    StripemeterError,
    StripeRefused,
    StripeUnavailable,
)
from tests.support.servers import serve_asgi

RAISED: dict[str, StripemeterError] = {
    "api": ApiError(418, "teapot", "short and stout", "spout", extra={"hint": "tip me"}),
    "input": InputError("bad_quantity", "quantity must be a number", "events[0].quantity"),
    "conflict": BindingConflict("cus_1 is already bound to another tenant"),
    "database": DatabaseUnavailable("cannot connect to PostgreSQL: secret detail"),
    "pool": DatabaseTimeout("no PostgreSQL connection from pool 'stripemeter' within 5 s"),
    "stripe_down": StripeUnavailable("meter event: Stripe kept failing; last: 500"),
    "stripe_refused": StripeRefused("retrieve price price_x: no such price", code="missing"),
    "config": ConfigError("STRIPE_ACCOUNT is not set"),
    "reconciliation": ReconciliationError("cannot read Stripe for tenant t-1"),
}


@pytest.fixture(scope="module")
def base(pg_server_url: str) -> Iterator[str]:
    app: FastAPI = create_app(load_settings(BYPASS_AUTH=True), db_url=pg_server_url)

    def raise_it(kind: str) -> dict[str, Any]:
        raise RAISED[kind]

    app.add_api_route("/_test/raise/{kind}", raise_it, methods=["GET"])
    with serve_asgi(app) as url:
        yield url


def get(base: str, kind: str) -> tuple[int, Any]:
    answer = requests.get(f"{base}/_test/raise/{kind}", timeout=30)
    assert answer.headers["content-type"].startswith("application/json")
    return answer.status_code, answer.json()


def body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def test_an_api_error_keeps_its_status_code_field_and_extra(base: str) -> None:
    assert get(base, "api") == (
        418,
        {**body("teapot", "short and stout", "spout"), "hint": "tip me"},
    )


def test_an_input_error_is_400_with_its_code_and_field(base: str) -> None:
    assert get(base, "input") == (
        400,
        body("bad_quantity", "quantity must be a number", "events[0].quantity"),
    )


def test_a_conflict_is_409(base: str) -> None:
    assert get(base, "conflict") == (
        409,
        body("conflict", "cus_1 is already bound to another tenant"),
    )


@pytest.mark.parametrize("kind", ["database", "pool"])
def test_an_unreachable_database_is_503_without_the_detail(base: str, kind: str) -> None:
    assert get(base, kind) == (
        503,
        body("database_unavailable", "the database is unreachable; retry later"),
    )


def test_an_unreachable_stripe_is_503(base: str) -> None:
    assert get(base, "stripe_down") == (
        503,
        body("stripe_unavailable", "Stripe cannot be reached; retry later"),
    )


@pytest.mark.parametrize("kind", ["stripe_refused", "config", "reconciliation"])
def test_any_other_stripemeter_error_is_a_500_logged_with_its_traceback(
    base: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="stripemeter.api"):
        status, answer = get(base, kind)
    assert (status, answer) == (
        500,
        body("internal_error", "internal error; the request was not applied"),
    )
    assert "Traceback" not in str(answer) and str(RAISED[kind]) not in str(answer)
    logged = [r for r in caplog.records if r.name == "stripemeter.api" and r.exc_info]
    assert len(logged) == 1
    assert logged[0].exc_info is not None and logged[0].exc_info[1] is RAISED[kind]
    assert logged[0].getMessage() == (
        f"{type(RAISED[kind]).__name__} not handled by GET /_test/raise/{kind}"
    )
