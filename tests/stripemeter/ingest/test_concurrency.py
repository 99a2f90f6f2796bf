"""Many clients racing on the same keys: every key is accepted exactly once overall."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import psycopg
import requests

from tests.stripemeter.conftest import Api, event

CLIENTS = 32
KEYS = 200
CUSTOMERS = ("cus_a", "cus_b", "cus_c")


def _events(tenant: str) -> list[dict[str, object]]:
    """200 distinct events over 3 customers and several hours, quantities with decimals."""
    return [
        event(
            tenant,
            idempotencyKey=f"key-{i}",
            customerRef=CUSTOMERS[i % 3],
            quantity=i / 4,  # quarters: exact as binary floats, so exact in JSON
            ts=f"2026-11-20T{10 + i % 5:02d}:{i % 60:02d}:00Z",
        )
        for i in range(KEYS)
    ]


def test_32_clients_sending_the_same_200_keys_count_each_once(api: Api) -> None:
    events = _events(api.tenant)
    accepted: list[int] = []
    duplicates: list[int] = []
    failures: list[str] = []
    start = threading.Barrier(CLIENTS)
    auth = api.session.headers["Authorization"]

    def client(seed: int) -> None:
        rng = random.Random(seed)
        mine = events[:]
        rng.shuffle(mine)
        session = requests.Session()
        session.headers["Authorization"] = auth
        start.wait()
        position = 0
        while position < len(mine):
            size = rng.randint(1, 40)
            chunk = mine[position : position + size]
            position += size
            answer = session.post(api.url("/v1/events/ingest"), json={"events": chunk}, timeout=60)
            if answer.status_code != 200:
                failures.append(f"{answer.status_code} {answer.text[:200]}")
                continue
            body = answer.json()
            accepted.append(body["accepted"])
            duplicates.append(body["duplicates"])
        session.close()

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    assert sum(accepted) == KEYS
    assert sum(duplicates) == KEYS * (CLIENTS - 1)

    expected = {
        c: sum(Decimal(i) / 4 for i in range(KEYS) if CUSTOMERS[i % 3] == c) for c in CUSTOMERS
    }
    with psycopg.connect(api.db_url) as conn:
        ledger = dict(
            conn.execute(
                "SELECT customer_ref, sum(quantity) FROM events GROUP BY customer_ref"
            ).fetchall()
        )
        buckets = dict(
            conn.execute(
                "SELECT customer_ref, sum(total) FROM usage_buckets GROUP BY customer_ref"
            ).fetchall()
        )
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT sum(event_count) FROM usage_buckets)"
        ).fetchone()
    assert counts == (KEYS, KEYS)
    assert ledger == expected
    assert buckets == expected
    for customer in CUSTOMERS:
        answer = api.get(
            "/v1/usage",
            params={
                "metric": "api_calls",
                "customerRef": customer,
                "from": "2026-11-20T00:00:00Z",
                "to": "2026-11-21T00:00:00Z",
            },
        ).json()
        assert Decimal(answer["total"]) == expected[customer]
        assert answer["events"] == sum(1 for i in range(KEYS) if CUSTOMERS[i % 3] == customer)
