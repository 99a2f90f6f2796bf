"""StripeMeter's documented calls work here as written: its spellings are aliases of ours.

Each test sends a call the way StripeMeter's README or docs write it, to a real API on
a real PostgreSQL, and checks the exact answer (docs/migrating-from-stripemeter.md lists
every such call)."""

from __future__ import annotations

from tests.stripemeter.conftest import Api, event


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
