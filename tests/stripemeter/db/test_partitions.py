"""The ledger partitioned by month: every event lands in its month's partition, keys stay
unique across months and after detaching, and old databases migrate with every row."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import psycopg
import pytest

from stripemeter.db import partitions
from stripemeter.db.migrate import apply_migrations
from stripemeter.db.pool import open_pool
from stripemeter.ingest import ledger
from stripemeter.ingest.validation import ValidEvent
from tests.stripemeter.ingest.support import valid_event
from tests.support.databases import database_before

TENANT = "acme"
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _store(db_url: str, *events: ValidEvent) -> list[str]:
    """Ingest `events` as one request; the statuses in order."""
    with open_pool(db_url, max_size=1) as pool:
        outcome = ledger.ingest(
            pool, list(events), request_id="r", header_key=None, scope="s", body_sha256="x"
        )
    return [result["status"] for result in outcome.answer()["results"]]


def _where(conn: psycopg.Connection) -> dict[str, str]:
    """Each stored key and the partition that holds it."""
    rows = conn.execute("SELECT idempotency_key, tableoid::regclass::text FROM events").fetchall()
    return dict(rows)


def _partitions(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def at(year: int, month: int, day: int = 15) -> datetime:
    return datetime(year, month, day, 9, 30, tzinfo=UTC)


def test_each_event_lands_in_the_partition_of_its_utc_month(db_url: str) -> None:
    late_in_utc = datetime.fromisoformat("2026-02-28T23:30:00-02:00")  # March 1st, UTC
    statuses = _store(
        db_url,
        valid_event(TENANT, "jan", ts=at(2026, 1)),
        valid_event(TENANT, "old", ts=at(2019, 7)),
        valid_event(TENANT, "mar", ts=late_in_utc),
    )
    assert statuses == ["accepted"] * 3
    with psycopg.connect(db_url) as conn:
        assert _where(conn) == {
            "jan": "events_p202601",
            "old": "events_p201907",
            "mar": "events_p202603",
        }
        assert conn.execute("SELECT count(*) FROM events_default").fetchone() == (0,)


def test_a_key_resent_with_a_date_in_another_month_is_one_event(db_url: str) -> None:
    assert _store(db_url, valid_event(TENANT, "k", quantity=5, ts=at(2026, 10))) == ["accepted"]
    again = valid_event(TENANT, "k", quantity=5, ts=at(2026, 11))
    assert _store(db_url, again) == ["duplicate"]
    with psycopg.connect(db_url) as conn:
        assert _where(conn) == {"k": "events_p202610"}
        totals = conn.execute("SELECT sum(total), sum(event_count) FROM usage_buckets").fetchone()
        assert totals == (Decimal(5), 1)
        keys = conn.execute("SELECT tenant_id, idempotency_key FROM event_keys").fetchall()
        assert keys == [(TENANT, "k")]


def test_the_same_key_of_two_tenants_is_two_events(db_url: str) -> None:
    assert _store(db_url, valid_event("a", "k"), valid_event("b", "k")) == ["accepted"] * 2


def test_maintenance_creates_this_month_and_the_months_ahead(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        done = partitions.maintain(conn, months_ahead=2, retention_months=0, now=NOW)
        assert done.created == ["events_p202612", "events_p202701", "events_p202702"]
        assert partitions.maintain(conn, months_ahead=2, retention_months=0, now=NOW).created == []
        assert _partitions(conn) == [
            "events_default",
            "events_p202612",
            "events_p202701",
            "events_p202702",
        ]


def test_retention_detaches_old_months_and_their_keys_stay_duplicates(db_url: str) -> None:
    _store(
        db_url,
        valid_event(TENANT, "aug", ts=at(2026, 8)),
        valid_event(TENANT, "sep", ts=at(2026, 9)),
        valid_event(TENANT, "oct", ts=at(2026, 10)),
    )
    with psycopg.connect(db_url, autocommit=True) as conn:
        done = partitions.maintain(conn, months_ahead=0, retention_months=3, now=NOW)
        assert done.detached == ["events_p202608"]  # September is 3 months before December
        assert set(_where(conn)) == {"sep", "oct"}
        archived = conn.execute("SELECT idempotency_key FROM events_archive_p202608").fetchall()
        assert archived == [("aug",)]
    # The key of the detached month is still known; a new late event of that month is stored
    # in a fresh partition, and detaching that one again keeps both archives.
    assert _store(db_url, valid_event(TENANT, "aug", ts=at(2026, 8))) == ["duplicate"]
    assert _store(db_url, valid_event(TENANT, "aug-late", ts=at(2026, 8, 30))) == ["accepted"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        assert _where(conn)["aug-late"] == "events_p202608"
        again = partitions.maintain(conn, months_ahead=0, retention_months=3, now=NOW)
        assert again.detached == ["events_p202608"]
        second = conn.execute("SELECT idempotency_key FROM events_archive_p202608_2").fetchall()
        assert second == [("aug-late",)]


def test_a_month_already_in_the_default_partition_stays_there(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        # A row no partition covered (written before its month had one).
        conn.execute(
            "INSERT INTO events (tenant_id, idempotency_key, metric, customer_ref, quantity, ts)"
            " VALUES ('acme', 'stray', 'api_calls', 'cus_1', 1, %s)",
            (at(2025, 5),),
        )
        partitions.forget_known_months()
        partitions.ensure_months(conn, [(2025, 5)])
        assert _where(conn) == {"stray": "events_default"}
        assert (
            partitions.maintain(conn, months_ahead=0, retention_months=0, now=NOW).in_default == 1
        )
    # Ingest of that month still works, into the default partition.
    assert _store(db_url, valid_event(TENANT, "may", ts=at(2025, 5))) == ["accepted"]


def test_processes_creating_the_same_month_at_once_both_succeed(db_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def create() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                start.wait()
                partitions._create(conn, [(2030, 1), (2030, 2)])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(db_url) as conn:
        assert [p for p in _partitions(conn) if p.startswith("events_p2030")] == [
            "events_p203001",
            "events_p203002",
        ]


@pytest.fixture
def database_before_0018(pg_server_url: str) -> Iterator[str]:
    with database_before(pg_server_url, 18) as url:
        yield url


def test_0018_moves_every_row_into_its_month_keeping_seq_and_keys(
    database_before_0018: str,
) -> None:
    url = database_before_0018
    with psycopg.connect(url, autocommit=True) as conn:
        for key, ts in (("a", at(2026, 9)), ("b", at(2026, 9, 20)), ("c", at(2026, 11))):
            conn.execute(
                "INSERT INTO events (tenant_id, idempotency_key, metric, customer_ref, quantity,"
                " ts) VALUES ('acme', %s, 'api_calls', 'cus_1', 2, %s)",
                (key, ts),
            )
        before = conn.execute("SELECT idempotency_key, seq FROM events ORDER BY seq").fetchall()
        assert [m for m in apply_migrations(conn) if m.startswith("0018")] == [
            "0018_events_partitioned_by_month.sql"
        ]
        assert conn.execute("SELECT idempotency_key, seq FROM events ORDER BY seq").fetchall() == (
            before
        )
        assert _where(conn) == {"a": "events_p202609", "b": "events_p202609", "c": "events_p202611"}
        keys = conn.execute("SELECT idempotency_key FROM event_keys ORDER BY 1").fetchall()
        assert keys == [("a",), ("b",), ("c",)]
    partitions.forget_known_months()
    assert _store(url, valid_event(TENANT, "a", ts=at(2026, 12))) == ["duplicate"]
    assert _store(url, valid_event(TENANT, "d", ts=at(2026, 11))) == ["accepted"]
    with psycopg.connect(url) as conn:
        seqs = dict(conn.execute("SELECT idempotency_key, seq FROM events").fetchall())
        assert seqs["d"] > max(seq for _, seq in before)


def test_the_ledger_is_still_append_only_in_every_partition(db_url: str) -> None:
    _store(db_url, valid_event(TENANT, "k", ts=at(2026, 4)))
    with psycopg.connect(db_url) as conn, pytest.raises(psycopg.errors.RaiseException):
        conn.execute("UPDATE events_p202604 SET quantity = 9")
