"""StripeMeter's documented calls work here as written: its spellings are aliases of ours.

Each test sends a call the way StripeMeter's README or docs write it, to a real API on
a real PostgreSQL, and checks the exact answer (docs/migrating-from-stripemeter.md lists
every such call)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import requests

from stripemeter.api.app import create_app
from stripemeter.auth import create_api_key
from stripemeter.config import load_settings
from tests.stripemeter.conftest import Api, event, start_api
from tests.support.servers import serve_asgi


def _ingest(api: Api, *timestamps: str) -> None:
    events = [event(api.tenant, ts=ts, idempotencyKey=f"k-{i}") for i, ts in enumerate(timestamps)]
    answer = api.post("/v1/events/ingest", json={"events": events})
    assert answer.status_code == 200, answer.text


def test_events_start_time_and_end_time_return_only_the_window(api: Api) -> None:
    _ingest(
        api,
        "2026-11-20T09:59:59Z",
        "2026-11-20T10:00:00Z",
        "2026-11-20T10:30:00Z",
        "2026-11-20T11:00:00Z",
    )
    answer = api.get(
        "/v1/events",
        params={"startTime": "2026-11-20T10:00:00Z", "endTime": "2026-11-20T11:00:00Z"},
    )
    assert answer.status_code == 200, answer.text
    assert [e["ts"] for e in answer.json()["events"]] == [
        "2026-11-20T10:30:00Z",
        "2026-11-20T10:00:00Z",
    ]


def test_events_window_holding_none_returns_none(api: Api) -> None:
    _ingest(api, "2026-11-20T10:00:00Z", "2026-11-20T10:01:00Z", "2026-11-20T10:02:00Z")
    answer = api.get(
        "/v1/events",
        params={"startTime": "2026-11-21T00:00:00Z", "endTime": "2026-11-22T00:00:00Z"},
    )
    assert answer.status_code == 200
    assert answer.json()["events"] == []


def test_events_refuse_a_bound_given_under_both_names(api: Api) -> None:
    answer = api.get(
        "/v1/events",
        params={"from": "2026-11-20T10:00:00Z", "startTime": "2026-11-20T10:00:00Z"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": "conflicting_parameters",
        "message": "from and startTime are the same bound; give only one of them",
        "field": "startTime",
    }


def test_health_answers_status_and_timestamp(api: Api) -> None:
    before = datetime.now(UTC)
    answer = requests.get(api.url("/health"), timeout=10)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"status", "timestamp"} and body["status"] == "ok"
    stamp = datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)


def _key(api: Api, scopes: tuple[str, ...] = ("ingest", "read")) -> str:
    with psycopg.connect(api.db_url) as conn:
        return create_api_key(conn, api.tenant, "x", scopes=scopes).secret


def test_x_api_key_header_authenticates_like_bearer(api: Api) -> None:
    secret = _key(api)
    batch = {"events": [event(api.tenant)]}
    answer = requests.post(
        api.url("/v1/events/ingest"), json=batch, headers={"x-api-key": secret}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    listed = requests.get(
        api.url("/v1/events"), params={"limit": 10}, headers={"x-api-key": secret}, timeout=10
    )
    assert listed.status_code == 200 and len(listed.json()["events"]) == 1


def test_x_api_key_gets_the_same_refusals_as_bearer(api: Api) -> None:
    unknown = requests.get(api.url("/v1/events"), headers={"x-api-key": "smk_nope"}, timeout=10)
    assert unknown.status_code == 401
    assert unknown.json()["error"]["message"] == "unknown or revoked API key"
    ingest_only = _key(api, ("ingest",))
    forbidden = requests.get(api.url("/v1/events"), headers={"x-api-key": ingest_only}, timeout=10)
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden_scope"
    empty = requests.get(api.url("/v1/events"), headers={"x-api-key": ""}, timeout=10)
    assert empty.status_code == 401 and empty.json()["error"]["field"] == "x-api-key"


def test_the_same_key_in_both_headers_is_accepted(api: Api) -> None:
    secret = _key(api)
    headers = {"x-api-key": secret, "Authorization": f"Bearer {secret}"}
    assert requests.get(api.url("/v1/events"), headers=headers, timeout=10).status_code == 200


def test_different_keys_in_the_two_headers_are_refused(api: Api) -> None:
    headers = {"x-api-key": _key(api), "Authorization": f"Bearer {_key(api)}"}
    batch = {"events": [event(api.tenant)]}
    answer = requests.post(api.url("/v1/events/ingest"), json=batch, headers=headers, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"] == {
        "code": "conflicting_api_keys",
        "message": "the Authorization and x-api-key headers carry different keys; send one of them",
        "field": "x-api-key",
    }
    assert api.scalar("SELECT count(*) FROM events") == 0


# StripeMeter's README "REST API" example, byte for byte (its curl sends no key: here the
# key rides along as x-api-key, StripeMeter's header).
README_INGEST = """{
    "events": [{
      "tenantId": "your-tenant-id",
      "metric": "api_calls",
      "customerRef": "cus_ABC123",
      "quantity": 100,
      "ts": "2025-01-16T14:30:00Z"
    }]
  }"""


def test_stripemeter_readme_ingest_example_works_as_written(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        secret = create_api_key(conn, "your-tenant-id", "readme", scopes=("ingest", "read")).secret
    app = create_app(load_settings(), db_url=db_url)
    with serve_asgi(app) as base:
        headers = {"Content-Type": "application/json", "x-api-key": secret}
        answer = requests.post(
            base + "/v1/events/ingest", data=README_INGEST, headers=headers, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == 1
        listed = requests.get(
            base + "/v1/events",
            params={"tenantId": "your-tenant-id", "limit": 10},
            headers=headers,
            timeout=10,
        )
        assert listed.status_code == 200
        [stored] = listed.json()["events"]
        assert (stored["tenantId"], stored["customerRef"], stored["quantity"]) == (
            "your-tenant-id",
            "cus_ABC123",
            "100",
        )
        usage = requests.get(
            base + "/v1/usage",
            params={
                "tenantId": "your-tenant-id",
                "metric": "api_calls",
                "from": "2025-01-16T14:00:00Z",
                "to": "2025-01-16T15:00:00Z",
            },
            headers=headers,
            timeout=10,
        )
        assert usage.status_code == 200 and usage.json()["total"] == "100"


def test_bypass_auth_takes_a_name_as_tenant_and_strict_mode_refuses_it(db_url: str) -> None:
    body = {"events": [event("demo")]}
    with start_api(db_url, bypass=True) as open_api:
        assert open_api.post("/v1/events/ingest", json=body).status_code == 200
    with start_api(db_url, bypass=True, STRICT_TENANT_ID_UUID=True) as strict:
        refused = strict.post("/v1/events/ingest", json=body)
        assert refused.status_code == 400
        assert refused.json()["error"]["message"] == (
            "events[0].tenantId: tenantId must be a UUID (STRICT_TENANT_ID_UUID is on), got 'demo'"
        )
        read = strict.get("/v1/events", params={"tenantId": "demo"})
        assert read.status_code == 400 and read.json()["error"]["field"] == "tenantId"
        assert strict.post("/v1/events/ingest", json={"events": [event(strict.tenant)]}).ok


def test_an_upper_case_uuid_is_the_same_tenant_as_its_lower_case_form(api: Api) -> None:
    answer = api.post("/v1/events/ingest", json={"events": [event(api.tenant.upper())]})
    assert answer.status_code == 200, answer.text
    listed = api.get("/v1/events", params={"tenantId": api.tenant.upper()}).json()["events"]
    assert [e["tenantId"] for e in listed] == [api.tenant]
