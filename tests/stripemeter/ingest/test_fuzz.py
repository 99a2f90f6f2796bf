"""Seeded random mutations of a valid batch: whatever arrives, the answer is never a 5xx,
always JSON in the documented shape, and what was stored agrees with what was answered."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

from tests.stripemeter.conftest import Api, event

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e308,
    -0.0,
    "",
    " ",
    "x" * 300,
    "\u0000",
    "\ud800",
    "é😀",
    [],
    {},
    [1, 2],
    {"a": None},
    "2026-11-20T10:00:00Z",
    "00000000-0000-4000-8000-000000000000",
    10**40,
    "1e5",
]
FIELDS = ["tenantId", "metric", "customerRef", "quantity", "ts", "idempotencyKey", "meta", "zz"]


def _mutate(rng: random.Random, tenant: str, index: int) -> Any:
    ev: dict[str, Any] = event(
        tenant, idempotencyKey=f"fuzz-{index}", quantity=rng.choice([1, 2.25, 0])
    )
    for _ in range(rng.randint(0, 2)):
        name = rng.choice(FIELDS)
        if rng.random() < 0.2:
            ev.pop(name, None)
        else:
            ev[name] = rng.choice(ODD_VALUES)
    return ev if rng.random() > 0.05 else rng.choice(ODD_VALUES)


def test_random_batches_never_get_a_server_error(api: Api) -> None:
    rng = random.Random(20261124)
    accepted_keys: set[str] = set()
    for round_no in range(60):
        batch = [_mutate(rng, api.tenant, round_no * 10 + i) for i in range(rng.randint(1, 6))]
        raw = json.dumps({"events": batch}, ensure_ascii=rng.random() < 0.5)
        answer = api.post(
            "/v1/events/ingest",
            data=raw.encode("utf-8", "surrogatepass"),
            headers={"Content-Type": "application/json", "Idempotency-Key": f"fz-{round_no}"}
            if round_no % 3 == 0
            else {"Content-Type": "application/json"},
        )
        assert answer.status_code < 500, (raw, answer.text)
        body = answer.json()
        if answer.status_code == 200:
            statuses = [r["status"] for r in body["results"]]
            assert len(statuses) == len(batch)
            assert body["accepted"] == statuses.count("accepted")
            assert [e["index"] for e in body["errors"]] == [
                i for i, s in enumerate(statuses) if s == "error"
            ]
            accepted_keys |= {
                r["idempotencyKey"] for r in body["results"] if r["status"] == "accepted"
            }
        else:
            assert set(body["error"]) == {"code", "message", "field"}
            assert body["error"]["message"]
    stored = api.scalar("SELECT count(*) FROM events")
    assert stored == len(accepted_keys)
    totals = api.scalar(
        "SELECT (SELECT coalesce(sum(quantity), 0) FROM events)"
        " = (SELECT coalesce(sum(total), 0) FROM usage_buckets)"
    )
    assert totals is True
    assert stored > 0 and isinstance(api.scalar("SELECT sum(quantity) FROM events"), Decimal)
