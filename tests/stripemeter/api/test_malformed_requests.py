"""Malformed requests: each is answered 4xx with an error naming the problem, in the one
error body /openapi.json documents (`ErrorBody`); nothing is stored, and the server stays
healthy. One server and database serve the whole module."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest
import requests

from stripemeter.api.app import create_app
from stripemeter.config import load_settings
from tests.stripemeter.conftest import Api, event

OTHER_TENANT = "00000000-0000-4000-8000-00000000000b"


def _documented_error_body() -> jsonschema_rs.Validator:
    """A validator of the error body as the app's OpenAPI document defines it."""
    document = create_app(load_settings()).openapi()
    schema = {"$ref": "#/components/schemas/ErrorBody", "components": document["components"]}
    return jsonschema_rs.validator_for(schema, validate_formats=True)


ERROR_BODY = _documented_error_body()


@dataclasses.dataclass
class Case:
    """A bad request: how to send it and what the answer must say."""

    status: int
    code: str
    says: str  # a fragment the error message must contain
    field: str | None = None
    method: str = "POST"
    path: str = "/v1/events/ingest"
    events: list[Any] | None = None  # one-event batch built from a valid event
    raw: bytes | None = None
    body: Any = None
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    anonymous: bool = False


def bad_event(**changes: Any) -> Callable[[str], dict[str, Any]]:
    """A valid event with `changes` applied; a value of ... removes the field."""

    def build(tenant: str) -> dict[str, Any]:
        ev = event(tenant)
        for name, value in changes.items():
            if value is ...:
                ev.pop(name)
            else:
                ev[name] = value
        return ev

    return build


EVENT_CASES: dict[str, tuple[Callable[[str], Any], str, str, str]] = {
    # name: (event builder, error code, message fragment, field)
    "tenant_too_long": (
        bad_event(tenantId="t" * 65),
        "invalid_value",
        "must be 1 to 64 printable characters",
        "tenantId",
    ),
    "tenant_with_control_character": (
        bad_event(tenantId="acme\tcorp"),
        "invalid_value",
        "printable characters",
        "tenantId",
    ),
    "tenant_missing": (
        bad_event(tenantId=...),
        "missing_field",
        "tenantId is required",
        "tenantId",
    ),
    "metric_with_space": (
        bad_event(metric="api calls"),
        "invalid_value",
        "metric must be",
        "metric",
    ),
    "metric_too_long": (bad_event(metric="m" * 129), "invalid_value", "1-128", "metric"),
    "metric_not_string": (bad_event(metric=5), "invalid_type", "got number", "metric"),
    "customer_empty": (bad_event(customerRef=""), "invalid_value", "customerRef", "customerRef"),
    "customer_too_long": (
        bad_event(customerRef="c" * 256),
        "invalid_value",
        "1-255",
        "customerRef",
    ),
    "customer_control_char": (
        bad_event(customerRef="cus\n1"),
        "invalid_value",
        "printable",
        "customerRef",
    ),
    "quantity_negative": (bad_event(quantity=-1), "invalid_value", ">= 0", "quantity"),
    "quantity_string": (bad_event(quantity="5"), "invalid_type", "got string", "quantity"),
    "quantity_boolean": (bad_event(quantity=True), "invalid_type", "got boolean", "quantity"),
    "quantity_null": (
        bad_event(quantity=None),
        "missing_field",
        "quantity is required",
        "quantity",
    ),
    "quantity_seven_decimals": (
        bad_event(quantity=0.0000001),
        "invalid_value",
        "at most 6 decimal places",
        "quantity",
    ),
    "quantity_huge": (bad_event(quantity=1e40), "invalid_value", "less than 1e15", "quantity"),
    "ts_without_timezone": (
        bad_event(ts="2026-11-20T10:00:00"),
        "invalid_value",
        "timezone",
        "ts",
    ),
    "ts_not_a_date": (bad_event(ts="yesterday"), "invalid_value", "ISO-8601", "ts"),
    "ts_number": (bad_event(ts=1763633000), "invalid_type", "ts must be a string", "ts"),
    "ts_far_future": (
        bad_event(ts="2999-01-01T00:00:00Z"),
        "future_timestamp",
        "MAX_FUTURE_SKEW_SECONDS",
        "ts",
    ),
    "ts_before_1970": (bad_event(ts="1969-12-31T23:00:00Z"), "invalid_value", "1970", "ts"),
    "meta_not_object": (bad_event(meta=["a"]), "invalid_type", "meta must be an object", "meta"),
    "meta_too_large": (
        bad_event(meta={"blob": "x" * 5000}),
        "meta_too_large",
        "MAX_EVENT_META_BYTES",
        "meta",
    ),
    "meta_with_nul": (bad_event(meta={"a": "x\u0000y"}), "invalid_value", "NUL", "meta"),
    "key_empty": (
        bad_event(idempotencyKey=""),
        "invalid_value",
        "idempotencyKey",
        "idempotencyKey",
    ),
    "key_too_long": (
        bad_event(idempotencyKey="k" * 256),
        "invalid_value",
        "1-255",
        "idempotencyKey",
    ),
    "key_number": (bad_event(idempotencyKey=42), "invalid_type", "got number", "idempotencyKey"),
    "unknown_event_field": (bad_event(quantiy=3), "unknown_field", "'quantiy'", "quantiy"),
    "event_not_object": (lambda tenant: "just text", "invalid_type", "JSON object", None),
}

REQUEST_CASES: dict[str, Case] = {
    "json_syntax": Case(400, "invalid_json", "not valid JSON", raw=b'{"events": [}'),
    "empty_body": Case(400, "invalid_json", "not valid JSON", raw=b""),
    "json_nan": Case(400, "invalid_json", "NaN", raw=b'{"events": [{"quantity": NaN}]}'),
    "not_utf8": Case(400, "invalid_json", "UTF-8", raw=b'{"events": ["\xff\xfe"]}'),
    "deeply_nested": Case(400, "invalid_json", "not valid JSON", raw=b"[" * 200_000),
    "integer_with_5000_digits": Case(
        400,
        "invalid_json",
        "cannot read",
        raw=b'{"events": [{"quantity": ' + b"9" * 5000 + b"}]}",
    ),
    "field_name_with_lone_surrogate": Case(
        400, "unknown_field", "\\ud800", "\ud800", raw=b'{"events": [], "\\ud800": 1}'
    ),
    "body_is_array": Case(400, "invalid_body", "JSON object", body=[]),
    "events_missing": Case(400, "missing_field", "events is required", "events", body={}),
    "events_not_array": Case(
        400, "invalid_type", "events must be an array", "events", body={"events": {}}
    ),
    "events_empty": Case(400, "empty_batch", "at least one", "events", body={"events": []}),
    "unknown_body_field": Case(
        400, "unknown_field", "'extra'", "extra", body={"events": [], "extra": 1}
    ),
    "too_many_events": Case(400, "batch_too_large", "at most 1000", "events", events=[None] * 1001),
    "body_over_1_mib": Case(413, "payload_too_large", "limit", raw=b" " * (1024 * 1024 + 1)),
    "wrong_content_type": Case(
        415,
        "unsupported_media_type",
        "application/json",
        "Content-Type",
        raw=b"events=1",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "header_key_too_long": Case(
        400,
        "invalid_header",
        "Idempotency-Key",
        "Idempotency-Key",
        events=[None],
        headers={"Idempotency-Key": "h" * 201},
    ),
    "no_api_key": Case(
        401, "unauthorized", "missing API key", "Authorization", events=[None], anonymous=True
    ),
    "wrong_api_key": Case(
        401,
        "unauthorized",
        "unknown or revoked",
        "Authorization",
        events=[None],
        anonymous=True,
        headers={"Authorization": "Bearer smk_not_a_real_key"},
    ),
    "basic_auth_scheme": Case(
        401,
        "unauthorized",
        "Bearer",
        "Authorization",
        events=[None],
        anonymous=True,
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    ),
    "other_tenants_event": Case(
        403, "forbidden_tenant", OTHER_TENANT, "events[0].tenantId", body="other-tenant"
    ),
    "usage_unaligned_from": Case(
        400,
        "unaligned_window",
        "hour boundary",
        "from",
        method="GET",
        path="/v1/usage",
        params={"metric": "m", "from": "2026-11-20T10:30:00Z", "to": "2026-11-21T00:00:00Z"},
    ),
    "usage_naive_from": Case(
        400,
        "invalid_request",
        "timezone",
        "from",
        method="GET",
        path="/v1/usage",
        params={"metric": "m", "from": "2026-11-20T10:00:00", "to": "2026-11-21T00:00:00Z"},
    ),
    "usage_missing_metric": Case(
        400,
        "invalid_request",
        "metric",
        "metric",
        method="GET",
        path="/v1/usage",
        params={"from": "2026-11-20T10:00:00Z", "to": "2026-11-21T00:00:00Z"},
    ),
    "usage_empty_window": Case(
        400,
        "invalid_window",
        "later than from",
        "to",
        method="GET",
        path="/v1/usage",
        params={"metric": "m", "from": "2026-11-21T00:00:00Z", "to": "2026-11-20T00:00:00Z"},
    ),
    "usage_nul_in_customer": Case(
        400,
        "invalid_request",
        "customerRef",
        "customerRef",
        method="GET",
        path="/v1/usage",
        params={
            "metric": "m",
            "customerRef": "a\x00b",
            "from": "2026-11-20T00:00:00Z",
            "to": "2026-11-21T00:00:00Z",
        },
    ),
    "usage_year_one": Case(
        400,
        "invalid_value",
        "between 1970 and 9999",
        "from",
        method="GET",
        path="/v1/usage",
        params={"metric": "m", "from": "0001-01-01T00:00:00+01:00", "to": "2026-11-21T00:00:00Z"},
    ),
    "events_nul_in_metric": Case(
        400,
        "invalid_request",
        "metric",
        "metric",
        method="GET",
        path="/v1/events",
        params={"metric": "\x00"},
    ),
    "mapping_nul_in_account": Case(
        400,
        "invalid_request",
        "stripeAccount",
        "stripeAccount",
        path="/v1/mappings",
        body="mapping:stripeAccount=a\x00b",
    ),
    "events_bad_cursor": Case(
        400,
        "invalid_cursor",
        "cursor",
        "cursor",
        method="GET",
        path="/v1/events",
        params={"cursor": "!!!"},
    ),
    "events_limit_zero": Case(
        400,
        "invalid_request",
        "limit",
        "limit",
        method="GET",
        path="/v1/events",
        params={"limit": "0"},
    ),
    "events_bad_tenant_param": Case(
        400,
        "invalid_value",
        "tenantId must be 1 to 64 printable characters",
        "tenantId",
        method="GET",
        path="/v1/events",
        params={"tenantId": "t" * 65},
    ),
    "mapping_bad_aggregation": Case(
        400,
        "invalid_request",
        "aggregation",
        "aggregation",
        path="/v1/mappings",
        body="mapping:aggregation=avg",
    ),
    "mapping_missing_price": Case(
        400, "invalid_request", "priceId", "priceId", path="/v1/mappings", body="mapping:-priceId"
    ),
    "mapping_delete_not_uuid": Case(
        400,
        "invalid_request",
        "mapping_id",
        "mapping_id",
        method="DELETE",
        path="/v1/mappings/xyz",
    ),
    "unknown_route": Case(404, "not_found", "no such route", method="GET", path="/v1/nothing"),
    "wrong_method": Case(405, "method_not_allowed", "not allowed", method="PUT"),
}


def _mapping(tenant: str, spec: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenantId": tenant,
        "metric": "api_calls",
        "aggregation": "sum",
        "stripeAccount": "default",
        "priceId": "price_1",
    }
    change = spec.split(":", 1)[1]
    if change.startswith("-"):
        body.pop(change[1:])
    else:
        name, value = change.split("=")
        body[name] = value
    return body


def _send(api: Api, case: Case) -> requests.Response:
    session = requests.Session() if case.anonymous else api.session
    kwargs: dict[str, Any] = {"params": case.params, "headers": dict(case.headers), "timeout": 30}
    if case.raw is not None:
        kwargs["data"] = case.raw
        kwargs["headers"].setdefault("Content-Type", "application/json")
    elif case.events is not None:
        kwargs["json"] = {"events": [event(api.tenant) for _ in case.events]}
    elif case.body == "other-tenant":
        kwargs["json"] = {"events": [event(OTHER_TENANT)]}
    elif isinstance(case.body, str) and case.body.startswith("mapping:"):
        kwargs["json"] = _mapping(api.tenant, case.body)
    elif case.body is not None:
        kwargs["json"] = case.body
    return session.request(case.method, api.url(case.path), **kwargs)


def _assert_nothing_stored_and_healthy(api: Api) -> None:
    stored = api.scalar(
        "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM usage_buckets)"
        " + (SELECT count(*) FROM ingest_requests) + (SELECT count(*) FROM price_mappings)"
    )
    assert stored == 0
    ready = requests.get(api.url("/health/ready"), timeout=10)
    # Degraded at most: no Stripe answers these tests (the `stripe` check says so).
    assert ready.status_code == 200 and ready.json()["status"] != "unhealthy"
    assert ready.json()["checks"]["database"]["status"] == "ok"


def _assert_error(
    answer: requests.Response, status: int, code: str, says: str, expected_field: str | None
) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    problems = [str(problem) for problem in ERROR_BODY.iter_errors(answer.json())]
    assert problems == [], f"not the documented error body: {problems}"
    error = answer.json()["error"]
    assert error["code"] == code
    assert says in error["message"]
    assert error["field"] == expected_field


@pytest.mark.parametrize("name", sorted(EVENT_CASES))
def test_invalid_event_is_refused_naming_the_field(module_api: Api, name: str) -> None:
    build, code, says, field_name = EVENT_CASES[name]
    answer = module_api.post("/v1/events/ingest", json={"events": [build(module_api.tenant)]})
    expected_field = f"events[0].{field_name}" if field_name else "events[0]"
    _assert_error(answer, 400, code, says, expected_field)
    body = answer.json()
    assert body["errors"][0]["index"] == 0
    assert body["errors"][0]["error"]["code"] == code
    _assert_nothing_stored_and_healthy(module_api)


@pytest.mark.parametrize("name", sorted(REQUEST_CASES))
def test_malformed_request_is_refused_with_a_clear_error(module_api: Api, name: str) -> None:
    case = REQUEST_CASES[name]
    answer = _send(module_api, case)
    _assert_error(answer, case.status, case.code, case.says, case.field)
    _assert_nothing_stored_and_healthy(module_api)


def test_every_event_invalid_reports_each_by_index(module_api: Api) -> None:
    batch = {
        "events": [
            event(module_api.tenant, quantity=-1),
            event(module_api.tenant, ts="soon"),
        ]
    }
    answer = module_api.post("/v1/events/ingest", json=batch)
    assert answer.status_code == 400
    assert "all 2 events are invalid" in answer.json()["error"]["message"]
    assert [(e["index"], e["error"]["field"]) for e in answer.json()["errors"]] == [
        (0, "quantity"),
        (1, "ts"),
    ]
    _assert_nothing_stored_and_healthy(module_api)


def test_error_bodies_are_json_never_html(module_api: Api) -> None:
    answer = requests.post(
        module_api.url("/v1/events/ingest"),
        data=json.dumps({"events": "x"}),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "unauthorized"
