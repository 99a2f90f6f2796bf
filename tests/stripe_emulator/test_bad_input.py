"""Odd input never yields a 500 or half-written state."""

from __future__ import annotations

import pytest
import requests

from tests.support.emulator import TEST_KEY

AUTH = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/test_helpers/test_clocks", "frozen_time=99999999999999999999999", "frozen_time"),
        ("/v1/test_helpers/test_clocks", "frozen_time=-5", "frozen_time"),
        ("/v1/test_helpers/test_clocks", "frozen_time[a]=1", "frozen_time"),
        ("/v1/customers", "a[b=1", "a[b"),
        ("/v1/customers", "metadata=x&metadata[k]=v", "metadata[k]"),
        ("/v1/customers", '{"email": "json@example.com"}', None),
        ("/v1/prices", "currency=usd&tiers[0][up_to]=x", None),
        ("/v1/billing/meter_events", "event_name=x&payload=abc", "payload"),
    ],
)
def test_malformed_bodies_get_400_naming_the_problem(
    base_url: str, path: str, body: str, param: str | None
) -> None:
    resp = requests.post(f"{base_url}{path}", data=body, headers=AUTH, timeout=5)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    state = requests.get(f"{base_url}/_emulator/state", timeout=5).json()
    assert all(rows == [] for rows in state.values())


def test_non_utf8_body_is_400(base_url: str) -> None:
    resp = requests.post(f"{base_url}/v1/customers", data=b"name=\xff\xfe", headers=AUTH, timeout=5)
    assert resp.status_code in (200, 400)  # percent-free bytes decode per form rules
    assert resp.headers["Request-Id"].startswith("req_")


def test_summary_over_huge_range_with_hourly_windows_is_bounded(base_url: str) -> None:
    headers = {"Authorization": f"Bearer {TEST_KEY}"}
    meter = requests.post(
        f"{base_url}/v1/billing/meters",
        data={"display_name": "m", "event_name": "e", "default_aggregation[formula]": "sum"},
        headers=headers,
        timeout=5,
    ).json()
    cus = requests.post(f"{base_url}/v1/customers", headers=headers, timeout=5).json()
    resp = requests.get(
        f"{base_url}/v1/billing/meters/{meter['id']}/event_summaries",
        params={
            "customer": cus["id"],
            "start_time": 0,
            "end_time": 3600 * 24 * 365 * 50,
            "value_grouping_window": "hour",
        },
        headers=headers,
        timeout=10,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "end_time"
