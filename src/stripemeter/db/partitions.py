"""The ledger's monthly partitions: made ahead, made on demand, detached when old.

`events` is partitioned by range on `ts`, one partition per UTC month named
`events_pYYYYMM` (migration 0018). Three things keep that true:

- `ensure_months` — called by the ledger before it stores a batch, for the months the
  batch names that this process has not seen yet (a set in memory, so the hot path costs
  nothing once a month exists). A backfill of 2019 or an event dated next month gets its
  partition before its insert, never an error.
- `maintain` — run by the workers on an interval: the current month and
  `LEDGER_PARTITIONS_AHEAD` months ahead exist, so ingest at a month's turn does not even
  take the on-demand path; and with `LEDGER_RETENTION_MONTHS` > 0, partitions wholly
  older than that many months are detached and renamed `events_archive_pYYYYMM` (kept,
  not dropped: archiving or dropping them is the operator's decision).
- `events_default`, the default partition, as a net: a row no partition covers lands
  there instead of failing. A month whose rows already sit in the default partition is
  not given a partition of its own (PostgreSQL would refuse it); it stays in the default,
  correct and only unpartitioned, and `maintain` reports it.

Detaching never loses exactly-once: the keys live in `event_keys`, which is not
partitioned and never detached, so a key of an archived month is still a duplicate.
A late event for an archived month goes to a fresh partition of that month.

Creation takes a transaction-level advisory lock, so concurrent processes making the
same month wait for each other instead of failing on the duplicate name.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql

log = logging.getLogger("stripemeter.partitions")

Month = tuple[int, int]  # (year, month), UTC

PREFIX = "events_p"
ARCHIVE_PREFIX = "events_archive_p"
# hashtext-free constant: one lock for every partition change of the ledger.
_LOCK_KEY = 0x5354_5250_4152_54  # "STRPART"

# Months known to exist, per database (host, port, name): a process may talk to several.
_known: set[tuple[str, Month]] = set()
_known_lock = threading.Lock()


def _database(conn: psycopg.Connection) -> str:
    info = conn.info
    return f"{info.host}:{info.port}/{info.dbname}"


def month_of(ts: datetime) -> Month:
    """The UTC month `ts` falls in."""
    utc = ts.astimezone(UTC)
    return (utc.year, utc.month)


def shift(month: Month, by: int) -> Month:
    """The month `by` months after (or before, when negative) `month`."""
    index = month[0] * 12 + (month[1] - 1) + by
    return (index // 12, index % 12 + 1)


def bounds(month: Month) -> tuple[datetime, datetime]:
    """[first instant of the month, first instant of the next) in UTC."""
    year, number = month
    following = shift(month, 1)
    return datetime(year, number, 1, tzinfo=UTC), datetime(*following, 1, tzinfo=UTC)


def partition_name(month: Month) -> str:
    """`events_pYYYYMM`."""
    return f"{PREFIX}{month[0]:04d}{month[1]:02d}"


def _attached(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    ).fetchall()
    return {name for (name,) in rows}


def _archived(conn: psycopg.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND relname LIKE %s",
        (ARCHIVE_PREFIX + "%",),
    ).fetchall()
    return {name for (name,) in rows}


def _default_holds(conn: psycopg.Connection, month: Month) -> bool:
    start, end = bounds(month)
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM events_default WHERE ts >= %s AND ts < %s)", (start, end)
    ).fetchone()
    return bool(row and row[0])


def _create(conn: psycopg.Connection, months: Iterable[Month]) -> list[Month]:
    """Create the missing partitions of `months` in one transaction; the ones created."""
    created: list[Month] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        attached = _attached(conn)
        for month in sorted(set(months)):
            name = partition_name(month)
            if name in attached:
                continue
            if _default_holds(conn, month):
                log.warning(
                    "ledger: rows of %04d-%02d are in events_default; that month stays there",
                    *month,
                )
                continue
            start, end = bounds(month)
            conn.execute(
                sql.SQL("CREATE TABLE {} PARTITION OF events FOR VALUES FROM ({}) TO ({})").format(
                    sql.Identifier(name), sql.Literal(start), sql.Literal(end)
                )
            )
            created.append(month)
    return created


def ensure_months(conn: psycopg.Connection, months: Iterable[Month]) -> None:
    """Make sure every month in `months` has somewhere to go; cheap once it has.

    Runs its own transaction on `conn`, so call it outside any transaction of the
    caller's (the ledger does, before its insert).
    """
    database = _database(conn)
    with _known_lock:
        missing = {m for m in months if (database, m) not in _known}
    if not missing:
        return
    created = _create(conn, missing)
    if created:  # debug: a backfill of old months would otherwise print one line per month
        log.debug("ledger: partition(s) created: %s", ", ".join(map(partition_name, created)))
    with _known_lock:  # created, already there, or kept in the default partition
        _known.update((database, m) for m in missing)


def forget_known_months() -> None:
    """Drop the in-memory record of existing months (after a detach, and in tests)."""
    with _known_lock:
        _known.clear()


@dataclass
class Maintenance:
    """What one `maintain` pass did."""

    created: list[str] = field(default_factory=list)
    detached: list[str] = field(default_factory=list)
    in_default: int = 0  # rows that sit in events_default


def maintain(
    conn: psycopg.Connection,
    *,
    months_ahead: int,
    retention_months: int,
    now: datetime | None = None,
) -> Maintenance:
    """Create this month and `months_ahead` more; detach months older than the retention.

    `retention_months` 0 keeps everything. A partition is detached only when its whole
    range lies before the first day of the month `retention_months` before this one.
    """
    current = month_of(now or datetime.now(UTC))
    done = Maintenance()
    wanted = [shift(current, i) for i in range(months_ahead + 1)]
    done.created = [partition_name(m) for m in _create(conn, wanted)]
    if done.created:
        log.info("ledger: partition(s) created: %s", ", ".join(done.created))
    if retention_months > 0:
        oldest_kept = partition_name(shift(current, -retention_months))
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            archived = _archived(conn)
            for name in sorted(_attached(conn)):
                if not name.startswith(PREFIX) or name >= oldest_kept:
                    continue
                archive = ARCHIVE_PREFIX + name.removeprefix(PREFIX)
                if archive in archived:  # late events refilled an archived month
                    archive += f"_{sum(a.startswith(archive) for a in archived) + 1}"
                archived.add(archive)
                conn.execute(
                    sql.SQL("ALTER TABLE events DETACH PARTITION {}").format(sql.Identifier(name))
                )
                conn.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                        sql.Identifier(name), sql.Identifier(archive)
                    )
                )
                done.detached.append(name)
        if done.detached:
            forget_known_months()
            log.info("ledger: partition(s) detached: %s", ", ".join(done.detached))
    row = conn.execute("SELECT count(*) FROM events_default").fetchone()
    done.in_default = int(row[0]) if row else 0
    if done.in_default:
        log.warning(
            "ledger: %d row(s) sit in events_default (no partition of their own)", done.in_default
        )
    return done
