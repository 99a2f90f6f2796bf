"""Ingest semantics over real HTTP: exactly once, key precedence, 409, exact counting."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import psycopg

from tests.stripemeter.conftest import Api, event, start_api

MONTH = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}


def seed_batch(tenant: str) -> dict[str, Any]:
    """The seed's send-usage batch: normal, normal, duplicate of the first, late."""
    return {
        "events": [
            event(tenant, quantity=100, ts="2026-11-20T10:35:00Z", idempotencyKey="demo-evt-1"),
            event(tenant, quantity=250, ts="2026-11-20T11:00:00Z", idempotencyKey="demo-evt-2"),
            event(tenant, quantity=100, ts="2026-11-20T10:35:00Z", idempotencyKey="demo-evt-1"),
            event(tenant, quantity=75, ts="2026-11-19T11:00:00Z", idempotencyKey="demo-evt-late"),
        ]
    }


def usage(api: Api, **params: str) -> dict[str, Any]:
    answer = api.get("/v1/usage", params={"metric": "api_calls", **MONTH, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_seed_batch_twice_counts_each_event_once(api: Api) -> None:
    headers = {"Idempotency-Key": "demo-batch-1"}
    first = api.post("/v1/events/ingest", json=seed_batch(api.tenant), headers=headers)
    second = api.post("/v1/events/ingest", json=seed_batch(api.tenant), headers=headers)

    assert first.status_code == 200 and second.status_code == 200
    assert (first.json()["accepted"], first.json()["duplicates"]) == (3, 1)
    assert [r["status"] for r in first.json()["results"]] == [
        "accepted",
        "accepted",
        "duplicate",
        "accepted",
    ]
    assert (second.json()["accepted"], second.json()["duplicates"]) == (0, 4)
    assert first.json()["requestId"] != second.json()["requestId"]
    assert usage(api)["total"] == "425"
    assert usage(api)["events"] == 3
    assert api.scalar("SELECT count(*) FROM events") == 3


def test_same_header_with_another_body_is_refused_and_stores_nothing(api: Api) -> None:
    headers = {"Idempotency-Key": "batch-x"}
    ok = api.post("/v1/events/ingest", json={"events": [event(api.tenant)]}, headers=headers)
    assert ok.status_code == 200
    other = {"events": [event(api.tenant, quantity=5, idempotencyKey="fresh")]}
    refused = api.post("/v1/events/ingest", json=other, headers=headers)

    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert refused.json()["error"]["field"] == "Idempotency-Key"
    assert "batch-x" in refused.json()["error"]["message"]
    assert api.scalar("SELECT count(*) FROM events WHERE idempotency_key = 'fresh'") == 0
    assert usage(api)["total"] == "1"


def test_header_key_is_scoped_by_tenant(db_url: str) -> None:
    headers = {"Idempotency-Key": "shared"}
    with start_api(db_url) as api, start_api(db_url) as other:
        a = api.post("/v1/events/ingest", json={"events": [event(api.tenant)]}, headers=headers)
        b = other.post(
            "/v1/events/ingest", json={"events": [event(other.tenant, quantity=2)]}, headers=headers
        )
    assert (a.status_code, b.status_code) == (200, 200)
    assert b.json()["accepted"] == 1


def test_under_bypass_header_key_is_scoped_by_the_batch_tenant(open_api: Api) -> None:
    headers = {"Idempotency-Key": "demo-batch-1"}
    other_tenant = "8f2c7b1e-0000-4000-8000-0000000000b2"
    first = open_api.post("/v1/events/ingest", json=seed_batch(open_api.tenant), headers=headers)
    second = open_api.post("/v1/events/ingest", json=seed_batch(other_tenant), headers=headers)
    reused = open_api.post(
        "/v1/events/ingest",
        json={"events": [event(open_api.tenant, quantity=9, idempotencyKey="other")]},
        headers=headers,
    )

    assert (first.status_code, second.status_code) == (200, 200)
    assert (second.json()["accepted"], second.json()["duplicates"]) == (3, 1)
    assert reused.status_code == 409
    assert open_api.scalar("SELECT count(*) FROM events") == 6


def test_same_header_with_the_same_body_reformatted_is_a_replay_not_a_conflict(api: Api) -> None:
    compact = (
        '{"events":[{"tenantId":"TENANT","metric":"api_calls","customerRef":"c","quantity":2.50,'
        '"ts":"2026-11-20T10:00:00Z"}]}'
    )
    spaced = (
        '{ "events": [ { "ts": "2026-11-20T10:00:00Z", "quantity": 2.5, "customerRef": "c",'
        ' "metric": "api_calls", "tenantId": "TENANT" } ] }'
    )
    answers = [
        api.post(
            "/v1/events/ingest",
            data=body.replace("TENANT", api.tenant),
            headers={"Idempotency-Key": "replay", "Content-Type": "application/json"},
        )
        for body in (compact, spaced)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["results"][0]["status"] for a in answers] == ["accepted", "duplicate"]
    assert answers[1].json()["results"][0]["idempotencyKey"] == "~hdr:replay:0"


def test_key_precedence_body_then_header_index_then_content_hash(api: Api) -> None:
    batch = {
        "events": [
            event(api.tenant, idempotencyKey="explicit"),
            event(api.tenant, quantity=2),
        ]
    }
    with_header = api.post("/v1/events/ingest", json=batch, headers={"Idempotency-Key": "h1"})
    keys = [r["idempotencyKey"] for r in with_header.json()["results"]]
    assert keys == ["explicit", "~hdr:h1:1"]

    no_header = api.post("/v1/events/ingest", json={"events": [event(api.tenant, quantity=3)]})
    key = no_header.json()["results"][0]["idempotencyKey"]
    assert key.startswith("~sha256:") and len(key) == len("~sha256:") + 64
    again = api.post("/v1/events/ingest", json={"events": [event(api.tenant, quantity=3)]})
    assert again.json()["results"][0] == {"idempotencyKey": key, "status": "duplicate"}
    # Same content in another number notation is the same event.
    notation = api.post(
        "/v1/events/ingest",
        data=b'{"events": [{"tenantId": "%s", "metric": "api_calls", "customerRef": "cus_1",'
        b' "quantity": 3.000, "ts": "2026-11-20T11:15:00+01:00"}]}' % api.tenant.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert notation.json()["results"][0] == {"idempotencyKey": key, "status": "duplicate"}
    assert usage(api)["total"] == "6"


def test_duplicates_inside_one_batch_count_the_first_occurrence(api: Api) -> None:
    batch = {
        "events": [
            event(api.tenant, quantity=7, idempotencyKey="k"),
            event(api.tenant, quantity=9, idempotencyKey="k"),
            event(api.tenant, quantity=7),
            event(api.tenant, quantity=7),
        ]
    }
    answer = api.post("/v1/events/ingest", json=batch).json()
    assert [r["status"] for r in answer["results"]] == [
        "accepted",
        "duplicate",
        "accepted",
        "duplicate",
    ]
    assert usage(api)["total"] == "14"
    assert api.scalar("SELECT quantity FROM events WHERE idempotency_key = 'k'") == Decimal(7)


def test_quantities_are_stored_and_summed_exactly(api: Api) -> None:
    raw = (
        b'{"events": ['
        b'{"tenantId": "T", "metric": "api_calls", "customerRef": "c", "quantity": 0.1,'
        b' "ts": "2026-11-20T10:00:00Z"},'
        b'{"tenantId": "T", "metric": "api_calls", "customerRef": "c", "quantity": 0.2,'
        b' "ts": "2026-11-20T10:00:01Z"},'
        b'{"tenantId": "T", "metric": "api_calls", "customerRef": "c",'
        b' "quantity": 999999999999999.999999, "ts": "2026-11-20T10:00:02Z"}]}'
    ).replace(b'"T"', f'"{api.tenant}"'.encode())
    answer = api.post("/v1/events/ingest", data=raw, headers={"Content-Type": "application/json"})
    assert answer.json()["accepted"] == 3
    totals = usage(api, customerRef="c")
    assert totals["total"] == "1000000000000000.299999"  # 22 digits, none rounded
    assert totals["max"] == "999999999999999.999999"
    listed = api.get("/v1/events", params={"customerRef": "c"}).json()["events"]
    assert [e["quantity"] for e in listed] == ["999999999999999.999999", "0.2", "0.1"]


def test_buckets_keep_sum_max_count_and_last_by_event_time(api: Api) -> None:
    batch = {
        "events": [
            event(api.tenant, quantity=5, ts="2026-11-20T10:50:00Z"),
            event(api.tenant, quantity=9, ts="2026-11-20T10:10:00Z"),
        ]
    }
    api.post("/v1/events/ingest", json=batch)
    # A late event inside the same hour but earlier than the last one does not become "last".
    api.post(
        "/v1/events/ingest",
        json={"events": [event(api.tenant, quantity=2, ts="2026-11-20T10:20:00Z")]},
    )
    # A later one does.
    api.post(
        "/v1/events/ingest",
        json={"events": [event(api.tenant, quantity=4, ts="2026-11-20T10:55:00Z")]},
    )
    with psycopg.connect(api.db_url) as conn:
        row = conn.execute(
            "SELECT total, max_value, last_value, event_count, last_ts FROM usage_buckets"
        ).fetchall()
    assert row == [
        (Decimal(20), Decimal(9), Decimal(4), 4, datetime(2026, 11, 20, 10, 55, tzinfo=UTC))
    ]
    totals = usage(api)
    assert (totals["total"], totals["max"], totals["last"], totals["events"]) == ("20", "9", "4", 4)


def test_late_event_updates_its_own_hour(api: Api) -> None:
    api.post("/v1/events/ingest", json={"events": [event(api.tenant, quantity=1)]})
    api.post(
        "/v1/events/ingest",
        json={"events": [event(api.tenant, quantity=75, ts="2026-11-03T07:59:59.999Z")]},
    )
    hours = api.scalar(
        "SELECT string_agg(to_char(hour_start AT TIME ZONE 'UTC', 'DD HH24')"
        " || '=' || trim_scale(total), ',' ORDER BY hour_start) FROM usage_buckets"
    )
    assert hours == "03 07=75,20 10=1"


def test_mixed_batch_stores_valid_events_and_reports_invalid_ones_by_index(api: Api) -> None:
    batch = {
        "events": [
            event(api.tenant, idempotencyKey="good-1"),
            event(api.tenant, quantity=-1, idempotencyKey="bad"),
            event(api.tenant, idempotencyKey="good-2", metric="has space"),
            event(api.tenant, idempotencyKey="good-3"),
        ]
    }
    answer = api.post("/v1/events/ingest", json=batch)
    body = answer.json()
    assert answer.status_code == 200
    assert (body["accepted"], body["duplicates"]) == (2, 0)
    assert [e["index"] for e in body["errors"]] == [1, 2]
    assert body["errors"][0]["error"]["field"] == "quantity"
    assert body["errors"][1]["error"]["field"] == "metric"
    assert [r["status"] for r in body["results"]] == ["accepted", "error", "error", "accepted"]
    keys = api.scalar(
        "SELECT string_agg(idempotency_key, ',' ORDER BY idempotency_key) FROM events"
    )
    assert keys == "good-1,good-3"


def test_meta_resource_and_source_are_stored(api: Api) -> None:
    ev = event(
        api.tenant,
        resourceId="res-9",
        source="billing-svc",
        meta={"region": "eu", "weight": 1.25, "tags": ["a", "b"]},
    )
    api.post("/v1/events/ingest", json={"events": [ev]})
    listed = api.get("/v1/events").json()["events"][0]
    assert listed["resourceId"] == "res-9"
    assert listed["source"] == "billing-svc"
    assert listed["meta"] == {"region": "eu", "weight": 1.25, "tags": ["a", "b"]}
