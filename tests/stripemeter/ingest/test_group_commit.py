"""Group commit: many requests in one statement, each answered exactly as if it came alone.

Real PostgreSQL; requests are queued before the committer starts, so the group they form
is known, not left to timing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripemeter.db.pool import Pool, open_pool
from stripemeter.errors import DatabaseUnavailable, IdempotencyConflict, InputError, ShuttingDown
from stripemeter.ingest import ledger
from stripemeter.ingest.group import GroupCommitter
from stripemeter.ingest.ledger import Key, PreparedRequest
from stripemeter.ingest.validation import ValidEvent
from tests.stripemeter.ingest.support import valid_event as _event


def _request(
    events: list[ValidEvent | InputError],
    request_id: str,
    header: tuple[str, str] | None = None,
) -> PreparedRequest:
    """A prepared request; `header` is (Idempotency-Key, body fingerprint)."""
    return ledger.prepare(
        events,
        request_id=request_id,
        header_key=None if header is None else header[0],
        scope="tests",
        body_sha256="" if header is None else header[1],
    )


@pytest.fixture
def pool(db_url: str) -> Iterator[Pool]:
    opened = open_pool(db_url, max_size=4, wait=True)
    yield opened
    opened.close()


def _one_group(pool: Pool, requests: list[PreparedRequest]) -> list[set[Key] | BaseException]:
    """Queue every request, then start: they form one group (max_events is large)."""
    committer = GroupCommitter(pool, max_events=100_000)
    futures = [committer.submit(r) for r in requests]
    committer.start()
    results: list[set[Key] | BaseException] = []
    for future in futures:
        try:
            results.append(future.result(timeout=30))
        except Exception as exc:
            results.append(exc)
    committer.close()
    assert committer.groups == 1
    return results


def _ledger(db_url: str, tenant: str) -> tuple[dict[str, str], Decimal, int]:
    """Stored key -> request id, the buckets' total and their event count, for `tenant`."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT idempotency_key, request_id FROM events WHERE tenant_id = %s", (tenant,)
        ).fetchall()
        total, count = conn.execute(
            "SELECT coalesce(sum(total), 0), coalesce(sum(event_count), 0) FROM usage_buckets"
            " WHERE tenant_id = %s",
            (tenant,),
        ).fetchone() or (Decimal(0), 0)
    return dict(rows), total, count


def test_a_key_in_two_requests_of_one_group_is_accepted_for_the_earlier_only(
    pool: Pool, db_url: str
) -> None:
    tenant = str(uuid.uuid4())
    first = _request([_event(tenant, "k1"), _event(tenant, "k2", quantity=2)], "req_a")
    second = _request([_event(tenant, "k2", quantity=2), _event(tenant, "k3", quantity=4)], "req_b")
    results = _one_group(pool, [first, second])
    assert results == [{(tenant, "k1"), (tenant, "k2")}, {(tenant, "k3")}]
    assert isinstance(results[1], set)
    answer = ledger.outcome_of(second, results[1]).answer()
    assert [r["status"] for r in answer["results"]] == ["duplicate", "accepted"]
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    stored, total, count = _ledger(db_url, tenant)
    assert stored == {"k1": "req_a", "k2": "req_a", "k3": "req_b"}
    assert (total, count) == (Decimal(7), 3)


def test_a_statement_failing_for_one_request_fails_only_that_request(
    pool: Pool, db_url: str
) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "CREATE FUNCTION refuse_cus_9() RETURNS trigger LANGUAGE plpgsql AS $$"
            " BEGIN IF NEW.customer_ref = 'cus_9' THEN RAISE EXCEPTION 'refused cus_9'; END IF;"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events"
            " FOR EACH ROW EXECUTE FUNCTION refuse_cus_9()"
        )
    tenant = str(uuid.uuid4())
    good = _request([_event(tenant, "a")], "req_good", header=("h-good", "x"))
    bad = _request([_event(tenant, "b"), _event(tenant, "z", "cus_9")], "req_bad", ("h-bad", "y"))
    also_good = _request([_event(tenant, "c", quantity=5)], "req_also")
    results = _one_group(pool, [good, bad, also_good])
    assert results[0] == {(tenant, "a")}
    assert isinstance(results[1], psycopg.errors.RaiseException)
    assert "refused cus_9" in str(results[1])
    assert results[2] == {(tenant, "c")}
    stored, total, count = _ledger(db_url, tenant)
    assert stored == {"a": "req_good", "c": "req_also"}
    assert (total, count) == (Decimal(6), 2)
    with psycopg.connect(db_url) as conn:
        keys = conn.execute("SELECT idempotency_key FROM ingest_requests").fetchall()
    assert sorted(keys) == [("h-good",)]  # the failed request registered nothing


def test_an_idempotency_key_reused_with_another_body_in_one_group_conflicts_for_the_later(
    pool: Pool, db_url: str
) -> None:
    tenant = str(uuid.uuid4())
    original = _request([_event(tenant, "k1")], "req_1", header=("batch-7", "body-x"))
    other_body = _request([_event(tenant, "k9")], "req_2", header=("batch-7", "body-y"))
    replay = _request([_event(tenant, "k1")], "req_3", header=("batch-7", "body-x"))
    results = _one_group(pool, [original, other_body, replay])
    assert results[0] == {(tenant, "k1")}
    assert isinstance(results[1], IdempotencyConflict)
    assert results[2] == set()
    assert isinstance(results[2], set)
    assert ledger.outcome_of(replay, results[2]).answer()["duplicates"] == 1
    stored, _, count = _ledger(db_url, tenant)
    assert stored == {"k1": "req_1"} and count == 1


def test_a_group_closes_at_max_events(pool: Pool) -> None:
    tenant = str(uuid.uuid4())
    committer = GroupCommitter(pool, max_events=2)
    futures = [committer.submit(_request([_event(tenant, f"k{i}")], f"r{i}")) for i in range(5)]
    committer.start()
    assert [f.result(timeout=30) for f in futures] == [{(tenant, f"k{i}")} for i in range(5)]
    committer.close()
    assert (committer.groups, committer.grouped_requests) == (3, 5)


def test_max_wait_holds_a_group_open_for_requests_that_follow(pool: Pool) -> None:
    tenant = str(uuid.uuid4())
    committer = GroupCommitter(pool, max_events=1000, max_wait_s=0.5)
    committer.start()
    try:
        first = committer.submit(_request([_event(tenant, "a")], "r1"))
        time.sleep(0.05)
        second = committer.submit(_request([_event(tenant, "b")], "r2"))
        assert first.result(timeout=30) == {(tenant, "a")}
        assert second.result(timeout=30) == {(tenant, "b")}
    finally:
        committer.close()
    assert committer.groups == 1


def test_close_stores_what_is_queued_and_refuses_what_comes_after(pool: Pool, db_url: str) -> None:
    tenant = str(uuid.uuid4())
    committer = GroupCommitter(pool)
    queued = committer.submit(_request([_event(tenant, "q")], "r1"))
    committer.start()
    committer.close()
    assert queued.result(timeout=30) == {(tenant, "q")}
    with pytest.raises(ShuttingDown):
        committer.submit(_request([_event(tenant, "late")], "r2"))
    assert _ledger(db_url, tenant)[0] == {"q": "r1"}


def test_a_request_cancelled_before_its_group_forms_stores_nothing(pool: Pool, db_url: str) -> None:
    tenant = str(uuid.uuid4())
    committer = GroupCommitter(pool)
    gone = committer.submit(_request([_event(tenant, "gone")], "r1"))
    kept = committer.submit(_request([_event(tenant, "kept")], "r2"))
    assert gone.cancel()
    committer.start()
    assert kept.result(timeout=30) == {(tenant, "kept")}
    committer.close()
    assert _ledger(db_url, tenant)[0] == {"kept": "r2"}
    with pytest.raises(concurrent.futures.CancelledError):
        gone.result()


# Requests drawn from a few keys and request-level keys, so that repeats within a group,
# across groups, and reused Idempotency-Keys with the same or another body all occur.
_REQUESTS = st.lists(
    st.tuples(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=1, max_size=4),
        st.one_of(st.none(), st.tuples(st.sampled_from(["h1", "h2"]), st.sampled_from("xy"))),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=_REQUESTS, cuts=st.lists(st.integers(1, 8), max_size=8))
def test_grouped_requests_get_exactly_the_answers_they_get_one_by_one(
    pool: Pool,
    db_url: str,
    requests: list[tuple[list[str], tuple[str, str] | None]],
    cuts: list[int],
) -> None:
    alone, grouped = str(uuid.uuid4()), str(uuid.uuid4())

    def build(tenant: uuid.UUID) -> list[PreparedRequest]:
        return [
            ledger.prepare(
                [_event(tenant, k, quantity=1 + n) for n, k in enumerate(keys)],
                request_id=f"r{i}",
                header_key=None if header is None else header[0],
                scope=str(tenant),
                body_sha256="" if header is None else header[1],
            )
            for i, (keys, header) in enumerate(requests)
        ]

    def answers(
        results: list[set[Key] | BaseException], built: list[PreparedRequest]
    ) -> list[object]:
        return [
            type(r).__name__
            if isinstance(r, BaseException)
            else [e["status"] for e in ledger.outcome_of(p, r).answer()["results"]]
            for r, p in zip(results, built, strict=True)
        ]

    one_by_one = build(alone)
    expected = answers([ledger.store_group(pool, [r])[0] for r in one_by_one], one_by_one)

    together = build(grouped)
    results: list[set[Key] | BaseException] = []
    start = 0
    for cut in [*cuts, len(together)]:  # consecutive groups of the cut sizes
        group = together[start : start + cut]
        if group:
            results.extend(_one_group(pool, group))
        start += cut
        if start >= len(together):
            break
    assert answers(results, together) == expected
    stored_alone, total_alone, count_alone = _ledger(db_url, alone)
    stored_grouped, total_grouped, count_grouped = _ledger(db_url, grouped)
    assert stored_grouped == stored_alone
    assert (
        (total_grouped, count_grouped)
        == (total_alone, count_alone)
        == (
            total_alone,
            len(stored_alone),
        )
    )


def test_an_unreachable_database_fails_the_whole_group_at_once(db_url: str) -> None:
    from tests.support.servers import free_port

    unreachable = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing?connect_timeout=1"
    dead_pool = open_pool(unreachable, max_size=1, timeout_s=0.5)
    try:
        tenant = uuid.uuid4()
        requests = [_request([_event(tenant, f"k{i}")], f"r{i}") for i in range(6)]
        started = time.monotonic()
        results = _one_group(dead_pool, requests)
        elapsed = time.monotonic() - started
    finally:
        dead_pool.close()
    assert all(isinstance(r, DatabaseUnavailable) for r in results), results
    assert elapsed < 3.0  # one pool timeout for the group, not one per request (6 x 0.5 s)


def test_handlers_awaiting_store_in_one_group_each_hear_their_own_outcome(
    pool: Pool, db_url: str
) -> None:
    tenant = str(uuid.uuid4())
    committer = GroupCommitter(pool, max_events=1000, max_wait_s=0.3)
    used = _request([_event(tenant, "h1")], "r0", header=("hdr", "sha-a"))
    committer.start()
    try:
        assert committer.submit(used).result(timeout=30) == {(tenant, "h1")}

        async def three() -> list[object]:
            requests = [
                _request([_event(tenant, "x")], "r1"),
                _request([_event(tenant, "x")], "r2"),  # same key: duplicate for this one
                _request([_event(tenant, "y")], "r3", header=("hdr", "sha-b")),  # reused
            ]
            return await asyncio.gather(
                *(committer.store(r) for r in requests), return_exceptions=True
            )

        groups_before = committer.groups
        first, second, third = asyncio.run(three())
    finally:
        committer.close()
    assert first == {(tenant, "x")}
    assert second == set()
    assert isinstance(third, IdempotencyConflict)
    assert committer.groups == groups_before + 1
    assert _ledger(db_url, tenant)[0] == {"h1": "r0", "x": "r1"}


def test_a_handler_cancelled_before_its_group_forms_stores_nothing(pool: Pool, db_url: str) -> None:
    tenant = str(uuid.uuid4())
    committer = GroupCommitter(pool)

    async def cancelled_then_kept() -> set[Key]:
        gone = asyncio.ensure_future(committer.store(_request([_event(tenant, "gone")], "r1")))
        await asyncio.sleep(0)  # queued, writer not started: its group has not formed
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        kept = asyncio.ensure_future(committer.store(_request([_event(tenant, "kept")], "r2")))
        await asyncio.sleep(0)
        committer.start()
        return await kept

    try:
        assert asyncio.run(cancelled_then_kept()) == {(tenant, "kept")}
    finally:
        committer.close()
    assert _ledger(db_url, tenant)[0] == {"kept": "r2"}
