"""Issue 9, items 7-9 at ingest, over real HTTP and PostgreSQL: every input answers 4xx
or is stored exactly as documented.

- a trailing newline in `tenantId` or `metric` is refused naming the field (was 500 and
  stored with its newline);
- key-less events are keyed by canonical content: the same event written another way
  (key order, `1` / `1.0` / `1e0`, the same instant in another offset) is counted once;
- keys derived from the `Idempotency-Key` header live under `~hdr:`, which a body key
  cannot use, so they never collide with a client's own key;
- a quantity Stripe cannot take (15 digits at most) is refused at ingest.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from tests.stripemeter.conftest import Api, event

MONTH = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
JSON = {"Content-Type": "application/json"}


def usage(api: Api, metric: str = "api_calls", **params: str) -> dict[str, Any]:
    answer = api.get("/v1/usage", params={"metric": metric, **MONTH, **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def ingest_raw(api: Api, raw: str, **headers: str) -> requests.Response:
    """POST a body exactly as written (number notation and key order kept)."""
    return api.post("/v1/events/ingest", data=raw.encode(), headers={**JSON, **headers})


def raw_event(api: Api, rest: str) -> str:
    """A one-event body whose fields after `tenantId` are the JSON text `rest`."""
    return '{"events": [{"tenantId": "' + api.tenant + '", ' + rest + "}]}"


def count(api: Api, where: str = "true", *params: Any) -> int:
    value = api.scalar(f"SELECT count(*) FROM events WHERE {where}", *params)
    assert isinstance(value, int)
    return value


# --- item 8: anchored patterns -------------------------------------------------------


def test_tenant_id_with_a_trailing_newline_is_400_naming_it(api: Api, open_api: Api) -> None:
    for served in (api, open_api):
        body = {"events": [event(served.tenant + "\n")]}
        answer = served.post("/v1/events/ingest", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_value", "events[0].tenantId")
        assert "printable characters" in error["message"]
    assert count(api) == 0


def test_metric_with_a_trailing_newline_is_400_and_nothing_is_stored(api: Api) -> None:
    for metric in ("calls\n", "calls\r\n", "\ncalls"):
        answer = api.post("/v1/events/ingest", json={"events": [event(api.tenant, metric=metric)]})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_value", "events[0].metric")
    assert count(api) == 0


def test_in_a_mixed_batch_the_newline_events_are_refused_by_index(api: Api) -> None:
    batch = {
        "events": [
            event(api.tenant + "\n", idempotencyKey="a"),
            event(api.tenant, metric="calls\n", idempotencyKey="b"),
            event(api.tenant, idempotencyKey="c", quantity=4),
        ]
    }
    answer = api.post("/v1/events/ingest", json=batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"]) == (1, 0)
    assert [(e["index"], e["error"]["field"]) for e in body["errors"]] == [
        (0, "tenantId"),
        (1, "metric"),
    ]
    assert count(api) == 1
    assert usage(api)["total"] == "4"
    assert count(api, "metric LIKE %s", "%\n%") == 0


def test_query_metric_with_a_trailing_newline_is_400(api: Api) -> None:
    api.post("/v1/events/ingest", json={"events": [event(api.tenant)]})
    for path, params in (
        ("/v1/events", {"metric": "api_calls\n"}),
        ("/v1/usage", {"metric": "api_calls\n", **MONTH}),
    ):
        answer = api.get(path, params=params)
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["error"]["field"] == "metric"
    listed = api.get("/v1/events", params={"metric": "api_calls"})
    assert len(listed.json()["events"]) == 1


# --- item 9: content keys over canonical JSON ----------------------------------------


def test_meta_key_order_and_number_notation_are_one_event(api: Api) -> None:
    common = '"metric": "api_calls", "customerRef": "cus_1", "quantity": 1, '
    common += '"ts": "2026-11-20T10:15:00Z", '
    variants = [
        '"meta": {"a": 1, "b": 2}',
        '"meta": {"b": 2, "a": 1}',
        '"meta": {"a": 1.0, "b": 2}',
        '"meta": {"a": 1e0, "b": 2.00}',
        '"meta": {"b": 20e-1, "a": 1.000}',
    ]
    answers = [ingest_raw(api, raw_event(api, common + v)) for v in variants]
    assert [a.status_code for a in answers] == [200] * 5
    statuses = [a.json()["results"][0]["status"] for a in answers]
    assert statuses == ["accepted", "duplicate", "duplicate", "duplicate", "duplicate"]
    keys = {a.json()["results"][0]["idempotencyKey"] for a in answers}
    assert len(keys) == 1 and next(iter(keys)).startswith("~sha256:")
    assert count(api) == 1
    assert usage(api)["total"] == "1"
    assert usage(api)["events"] == 1


def test_different_meta_content_stays_different_events(api: Api) -> None:
    common = '"metric": "api_calls", "customerRef": "cus_1", "quantity": 1, '
    common += '"ts": "2026-11-20T10:15:00Z", '
    variants = [
        '"meta": {"a": 1, "b": 2}',
        '"meta": {"a": 1, "b": 3}',  # another value
        '"meta": {"a": "1", "b": 2}',  # a string is not a number
        '"meta": {"a": [1, 2]}',
        '"meta": {"a": [2, 1]}',  # array order matters
        '"meta": {}',  # an empty object is not "no meta"
        '"meta": null',
        '"meta": {"a": 1, "b": 2, "c": null}',
    ]
    answers = [ingest_raw(api, raw_event(api, common + v)) for v in variants]
    assert [a.json()["results"][0]["status"] for a in answers] == ["accepted"] * 8
    assert count(api) == 8
    assert usage(api)["total"] == "8"
    # "meta": null and no meta at all are the same event.
    again = ingest_raw(api, raw_event(api, common.rstrip(", ")))
    assert again.json()["results"][0]["status"] == "duplicate"
    assert count(api) == 8


def test_nested_meta_is_canonical_at_every_level(api: Api) -> None:
    common = '"metric": "api_calls", "customerRef": "cus_1", "quantity": 2, '
    common += '"ts": "2026-11-20T10:15:00Z", '
    first = ingest_raw(api, raw_event(api, common + '"meta": {"x": {"b": 1, "a": [1, {"q": 2}]}}'))
    second = ingest_raw(
        api, raw_event(api, common + '"meta": {"x": {"a": [1.0, {"q": 2e0}], "b": 10e-1}}')
    )
    assert first.json()["results"][0]["status"] == "accepted"
    assert second.json()["results"][0]["status"] == "duplicate"
    assert usage(api)["total"] == "2"


def test_quantity_and_timestamp_are_normalized_in_the_content_key(api: Api) -> None:
    variants = [
        '"metric": "api_calls", "customerRef": "cus_1", "quantity": 3,'
        ' "ts": "2026-11-20T10:15:00Z"',
        '"ts": "2026-11-20T10:15:00.000Z", "quantity": 3.0, "customerRef": "cus_1",'
        ' "metric": "api_calls"',
        '"metric": "api_calls", "customerRef": "cus_1", "quantity": 3e0,'
        ' "ts": "2026-11-20T11:15:00+01:00"',
        '"metric": "api_calls", "customerRef": "cus_1", "quantity": 300e-2,'
        ' "ts": "2026-11-20T05:15:00-05:00"',
    ]
    answers = [ingest_raw(api, raw_event(api, v)) for v in variants]
    statuses = [a.json()["results"][0]["status"] for a in answers]
    assert statuses == ["accepted", "duplicate", "duplicate", "duplicate"]
    # Another instant or another quantity is another event.
    other = [
        '"metric": "api_calls", "customerRef": "cus_1", "quantity": 3,'
        ' "ts": "2026-11-20T10:15:00.001Z"',
        '"metric": "api_calls", "customerRef": "cus_1", "quantity": 3.000001,'
        ' "ts": "2026-11-20T10:15:00Z"',
    ]
    assert [ingest_raw(api, raw_event(api, v)).json()["accepted"] for v in other] == [1, 1]
    assert count(api) == 3
    assert usage(api)["total"] == "9.000001"


# --- item 9: header-derived keys in their own namespace --------------------------------


def test_a_body_key_equal_to_a_header_derived_key_is_its_own_event(api: Api) -> None:
    first = api.post(
        "/v1/events/ingest",
        json={"events": [event(api.tenant, quantity=10)]},
        headers={"Idempotency-Key": "batch-7"},
    )
    assert first.status_code == 200
    assert first.json()["results"][0] == {"idempotencyKey": "~hdr:batch-7:0", "status": "accepted"}

    other = event(api.tenant, quantity=5, customerRef="cus_2", idempotencyKey="batch-7:0")
    second = api.post("/v1/events/ingest", json={"events": [other]})
    assert second.status_code == 200
    assert second.json()["results"][0] == {"idempotencyKey": "batch-7:0", "status": "accepted"}

    assert count(api) == 2
    assert usage(api)["total"] == "15"
    # The body key is stored exactly as sent, the derived one under its prefix.
    keys = api.scalar(
        "SELECT string_agg(idempotency_key, ',' ORDER BY idempotency_key) FROM events"
    )
    assert keys == "batch-7:0,~hdr:batch-7:0"


def test_a_body_key_equal_to_a_content_key_is_its_own_event(api: Api) -> None:
    keyless = api.post("/v1/events/ingest", json={"events": [event(api.tenant, quantity=2)]})
    content_key = keyless.json()["results"][0]["idempotencyKey"]
    assert content_key.startswith("~sha256:")
    plain = content_key.removeprefix("~")  # what content keys used to look like
    answer = api.post(
        "/v1/events/ingest", json={"events": [event(api.tenant, quantity=3, idempotencyKey=plain)]}
    )
    assert answer.json()["results"][0] == {"idempotencyKey": plain, "status": "accepted"}
    assert usage(api)["total"] == "5"


def test_a_body_key_with_the_reserved_prefix_is_refused(api: Api) -> None:
    for key in ("~hdr:batch-7:0", "~sha256:" + "0" * 64, "~"):
        body = {"events": [event(api.tenant, idempotencyKey=key)]}
        answer = api.post("/v1/events/ingest", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == (
            "reserved_key_prefix",
            "events[0].idempotencyKey",
        )
        assert "'~'" in error["message"] and "reserved" in error["message"]
    # Inside a batch only that event is refused; a `~` later in a key is fine.
    batch = {
        "events": [
            event(api.tenant, idempotencyKey="~mine"),
            event(api.tenant, quantity=6, idempotencyKey="mine~1"),
        ]
    }
    mixed = api.post("/v1/events/ingest", json=batch).json()
    assert (mixed["accepted"], [e["index"] for e in mixed["errors"]]) == (1, [0])
    assert mixed["errors"][0]["error"]["code"] == "reserved_key_prefix"
    assert count(api) == 1
    assert api.scalar("SELECT idempotency_key FROM events") == "mine~1"


def test_a_header_replay_with_numbers_written_otherwise_is_a_replay_not_a_conflict(
    api: Api,
) -> None:
    bodies = [
        raw_event(
            api,
            '"metric": "api_calls", "customerRef": "c", "quantity": 2,'
            ' "ts": "2026-11-20T10:00:00Z", "meta": {"n": 1, "big": 1e999999}',
        ),
        raw_event(
            api,
            '"metric": "api_calls", "customerRef": "c", "quantity": 2.0,'
            ' "ts": "2026-11-20T10:00:00Z", "meta": {"big": 10e999998, "n": 1.0}',
        ),
    ]
    answers = [ingest_raw(api, body, **{"Idempotency-Key": "h-2"}) for body in bodies]
    assert [a.status_code for a in answers] == [200, 200], answers[1].text
    assert [a.json()["results"][0]["status"] for a in answers] == ["accepted", "duplicate"]
    changed = raw_event(
        api,
        '"metric": "api_calls", "customerRef": "c", "quantity": 2.5, "ts": "2026-11-20T10:00:00Z"',
    )
    conflict = ingest_raw(api, changed, **{"Idempotency-Key": "h-2"})
    assert conflict.status_code == 409
    assert usage(api)["total"] == "2"


# --- item 7 at ingest: quantities Stripe cannot represent -----------------------------


def test_a_quantity_of_1e15_or_more_is_refused_naming_quantity(api: Api) -> None:
    for text in ("1e20", "1000000000000000", "1E+15", "1000000000000000.5"):
        answer = ingest_raw(
            api,
            raw_event(
                api,
                f'"metric": "api_calls", "customerRef": "c", "quantity": {text},'
                ' "ts": "2026-11-20T10:00:00Z"',
            ),
        )
        assert answer.status_code == 400, (text, answer.text)
        error = answer.json()["error"]
        assert (error["code"], error["field"]) == ("invalid_value", "events[0].quantity")
        assert "less than 1e15" in error["message"] and "15 digits" in error["message"]
    assert count(api) == 0


def test_the_largest_quantity_stripe_takes_is_stored_exactly(api: Api) -> None:
    batch = (
        '{"events": ['
        f'{{"tenantId": "{api.tenant}", "metric": "api_calls", "customerRef": "c",'
        ' "quantity": 999999999999999, "ts": "2026-11-20T10:00:00Z"},'
        f'{{"tenantId": "{api.tenant}", "metric": "api_calls", "customerRef": "c",'
        ' "quantity": 1e20, "ts": "2026-11-20T10:00:01Z"}]}'
    )
    answer = ingest_raw(api, batch)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], [e["index"] for e in body["errors"]]) == (1, [1])
    assert body["errors"][0]["error"]["field"] == "quantity"
    assert usage(api)["total"] == "999999999999999"
    assert count(api) == 1


def test_openapi_schema_states_the_same_rules(api: Api) -> None:
    schema = api.get("/openapi.json").json()
    body = schema["paths"]["/v1/events/ingest"]["post"]["requestBody"]["content"]
    props = body["application/json"]["schema"]["properties"]["events"]["items"]["properties"]
    assert props["quantity"]["exclusiveMaximum"] == 10**15
    assert props["metric"]["pattern"] == "^[A-Za-z0-9_.:-]{1,128}$"
    key_pattern = props["idempotencyKey"]["pattern"]
    assert key_pattern.startswith("^[^~")
    assert json.dumps(key_pattern)  # serializable as the JSON it is served as
