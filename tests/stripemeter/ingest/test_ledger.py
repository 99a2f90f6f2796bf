"""The ledger's atomicity: an event is never stored without being counted, or counted
without being stored, even when the statement fails half-way (real PostgreSQL, with a
trigger standing in for a crash at the worst moment)."""

from __future__ import annotations

from decimal import Decimal

import psycopg
import pytest

from stripemeter.db.pool import open_pool
from stripemeter.errors import InputError
from stripemeter.ingest import ledger
from stripemeter.ingest.validation import ValidEvent
from tests.stripemeter.ingest.support import valid_event

TENANT = "8f2c7b1e-0000-4000-8000-000000000001"


def _event(key: str, customer: str = "cus_1", quantity: int = 5) -> ValidEvent:
    return valid_event(TENANT, key, customer, quantity)


def _counts(db_url: str) -> tuple[int, int, Decimal]:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM usage_buckets),"
            " (SELECT coalesce(sum(total), 0) FROM usage_buckets)"
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


@pytest.mark.parametrize("failing_table", ["events", "usage_buckets"])
def test_a_failure_mid_statement_stores_and_counts_nothing(db_url: str, failing_table: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION fail_on_cus_9() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.customer_ref = 'cus_9' THEN RAISE EXCEPTION 'simulated crash'; END IF;"
            " RETURN NEW; END $$"
        )
        conn.execute(
            f"CREATE TRIGGER crash BEFORE INSERT ON {failing_table}"
            " FOR EACH ROW EXECUTE FUNCTION fail_on_cus_9()"
        )
    pool = open_pool(db_url, max_size=2, wait=True)
    try:
        items: list[ValidEvent | InputError] = [
            _event("a", "cus_1"),
            _event("b", "cus_2"),
            _event("z", "cus_9"),
        ]
        with pytest.raises(psycopg.errors.RaiseException, match="simulated crash"):
            ledger.ingest(pool, items, request_id="r1", header_key="h", scope="s", body_sha256="x")
        assert _counts(db_url) == (0, 0, Decimal(0))
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM ingest_requests").fetchone() == (0,)
        # The same batch without the poisoned event then goes through, exactly once.
        outcome = ledger.ingest(
            pool, items[:2], request_id="r2", header_key=None, scope="s", body_sha256=""
        )
        assert (outcome.accepted, outcome.duplicates) == (2, 0)
        assert _counts(db_url) == (2, 2, Decimal(10))
    finally:
        pool.close()


def test_batch_keys_are_inserted_in_sorted_order(db_url: str) -> None:
    """Fixed lock order is what keeps concurrent overlapping batches deadlock-free."""
    pool = open_pool(db_url, max_size=1, wait=True)
    try:
        keys = ["m", "c", "x", "a"]
        ledger.ingest(
            pool,
            [_event(k) for k in keys],
            request_id="r",
            header_key=None,
            scope="s",
            body_sha256="",
        )
    finally:
        pool.close()
    with psycopg.connect(db_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT idempotency_key FROM events ORDER BY seq")]
    assert stored == sorted(keys)
