"""The immutable ledger: store each usage event exactly once and count it in the same breath.

One SQL statement per batch does everything: it unnests the batch, claims each key in
`event_keys` with `ON CONFLICT DO NOTHING` on `(tenant_id, idempotency_key)`, inserts
the events of the claimed keys into `events` (partitioned by month on `ts`, which is why
key uniqueness lives in its own table: migration 0018), folds only those rows into
their hour buckets (`usage_buckets`), and returns the keys it inserted. The batch holds
each key once (`prepare`, `_insert_group`), so the join on the claimed keys is 1:1. Before
it, `partitions.ensure_months` gives any month the process has not seen its partition.
A statement is atomic, so after any crash an event is either stored and counted, or
neither. Why synchronous and not an aggregator: see bench/README.md.

Deadlocks are avoided by taking row locks in one global order: keys are claimed
sorted by (tenant, key) and buckets upserted sorted by their primary key. Deadlock and
serialization failures are retried anyway, since other writers may lock differently.

Event keys: the body's `idempotencyKey`, stored as sent; else
`~hdr:<Idempotency-Key header>:<index>`; else `~sha256:<hash of the event's canonical
content>`, so a resend, however it is written, is a duplicate. Body keys may not start
with `~`, so a derived key never collides with a key a client chose.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import psycopg
import psycopg.errors

from stripemeter.db import partitions
from stripemeter.db.pool import Pool
from stripemeter.errors import DatabaseUnavailable, IdempotencyConflict, InputError
from stripemeter.ingest.validation import DERIVED_KEY_PREFIX, ValidEvent
from stripemeter.jsonio import canonical_bytes, iso, parse_json_exact
from stripemeter.ops.metrics import REJECTED_METRIC_LABEL

MAX_ATTEMPTS = 5
HEADER_KEY_PREFIX = DERIVED_KEY_PREFIX + "hdr:"
CONTENT_KEY_PREFIX = DERIVED_KEY_PREFIX + "sha256:"

INSERT_AND_COUNT = """
WITH input AS (
    SELECT * FROM ROWS FROM (
        jsonb_to_recordset(%(batch)s::jsonb) AS (t text, k text, m text, c text, r text,
                                                  q numeric, ts timestamptz, s text,
                                                  meta jsonb, rq text)
    ) WITH ORDINALITY AS i(tenant_id, idempotency_key, metric, customer_ref, resource_id,
                           quantity, ts, source, meta, request_id, ord)
),
claimed AS (
    INSERT INTO event_keys (tenant_id, idempotency_key, ts)
    SELECT tenant_id, idempotency_key, ts FROM input ORDER BY ord
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING tenant_id, idempotency_key
),
inserted AS (
    INSERT INTO events (tenant_id, idempotency_key, metric, customer_ref, resource_id,
                        quantity, ts, source, meta, request_id)
    SELECT i.tenant_id, i.idempotency_key, i.metric, i.customer_ref, i.resource_id,
           i.quantity, i.ts, i.source, i.meta, i.request_id
    FROM input i JOIN claimed c USING (tenant_id, idempotency_key)
    ORDER BY i.ord
    RETURNING tenant_id, idempotency_key, metric, customer_ref, quantity, ts, seq
),
per_hour AS (
    SELECT tenant_id, metric, customer_ref, date_trunc('hour', ts, 'UTC') AS hour_start,
           sum(quantity) AS total, max(quantity) AS max_value, count(*) AS event_count,
           (array_agg(quantity ORDER BY ts DESC, seq DESC))[1] AS last_value,
           max(ts) AS last_ts
    FROM inserted
    GROUP BY 1, 2, 3, 4
),
counted AS (
    INSERT INTO usage_buckets AS b (tenant_id, metric, customer_ref, hour_start, total,
                                    max_value, last_value, last_ts, event_count, updated_at)
    SELECT tenant_id, metric, customer_ref, hour_start, total, max_value, last_value,
           last_ts, event_count, clock_timestamp()
    FROM per_hour
    ORDER BY tenant_id, metric, customer_ref, hour_start
    ON CONFLICT (tenant_id, metric, customer_ref, hour_start) DO UPDATE SET
        total = b.total + EXCLUDED.total,
        max_value = GREATEST(b.max_value, EXCLUDED.max_value),
        last_value = CASE WHEN b.last_ts IS NULL OR EXCLUDED.last_ts >= b.last_ts
                          THEN EXCLUDED.last_value ELSE b.last_value END,
        last_ts = GREATEST(b.last_ts, EXCLUDED.last_ts),
        event_count = b.event_count + EXCLUDED.event_count,
        updated_at = clock_timestamp()
    RETURNING 1
)
SELECT tenant_id, idempotency_key FROM inserted
"""

Status = Literal["accepted", "duplicate", "error"]


@dataclass
class IngestOutcome:
    """What happened to each event of a batch, in the answer's shape."""

    request_id: str
    accepted: int = 0
    duplicates: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    by_metric: Counter[tuple[str, str]] = field(default_factory=Counter)

    def answer(self) -> dict[str, Any]:
        """The JSON body of the ingest answer."""
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "requestId": self.request_id,
            "results": self.results,
            "errors": self.errors,
        }


def content_key(event: ValidEvent) -> str:
    """`~sha256:<hex>`: the key of an event sent with no body key and no header key.

    The hash is over the canonical JSON (`jsonio.canonical_json`) of the event's content,
    so the same event written another way is the same event, counted once:

    - the fields `tenantId`, `metric`, `customerRef`, `quantity`, `ts`, `resourceId`,
      `source` and `meta`, as one object with sorted keys and no whitespace; an absent
      optional field and `null` are the same, `{}` is not;
    - numbers (the quantity and every number inside `meta`) by value: `1`, `1.0`, `1.00`
      and `1e0` are one number, while `1` and `"1"` stay different;
    - `meta` objects by content: key order does not matter, array order does;
    - `ts` as its UTC instant: `11:15:00+01:00` is `10:15:00Z`, `.000` is no fraction;
    - `tenantId` in its canonical form (`stripemeter.tenants`: a UUID in lower case).

    The `~` prefix puts it outside every key a client can send in the body.
    """
    meta = event.meta
    if meta is None and event.meta_json is not None:  # built without the parsed object
        meta = parse_json_exact(event.meta_json.encode("utf-8"))
    content = {
        "tenantId": str(event.tenant_id),
        "metric": event.metric,
        "customerRef": event.customer_ref,
        "quantity": event.quantity,
        "ts": iso(event.ts),
        "resourceId": event.resource_id,
        "source": event.source,
        "meta": meta,
    }
    return CONTENT_KEY_PREFIX + hashlib.sha256(canonical_bytes(content)).hexdigest()


def header_event_key(header_key: str, index: int) -> str:
    """`~hdr:<Idempotency-Key header>:<index>`: the key of event `index` of that request.

    Its own namespace: a body key cannot start with `~`, so another event whose body
    key is `batch-7:0` is never taken for event 0 of the request keyed `batch-7`. The
    index is the text after the last `:`, so no two (header, index) pairs share a key.
    """
    return f"{HEADER_KEY_PREFIX}{header_key}:{index}"


def effective_key(event: ValidEvent, header_key: str | None, index: int) -> str:
    """The event's idempotency key under the precedence body > header:index > content.

    A body key is stored exactly as sent; the derived ones start with `~`, which
    validation refuses at the start of a body key.
    """
    if event.idempotency_key is not None:
        return event.idempotency_key
    if header_key is not None:
        return header_event_key(header_key, index)
    return content_key(event)


Key = tuple[str, str]


@dataclass
class PreparedRequest:
    """One ingest request made ready to store: every event keyed, in-request repeats found.

    `unique` holds the first occurrence of each key, the rows the request asks the
    ledger to insert; `request_key` is `(scope, header key, body fingerprint)` when the
    request carried an Idempotency-Key header.
    """

    request_id: str
    items: list[ValidEvent | InputError]
    keys: dict[int, Key]
    first_index: dict[Key, int]
    unique: list[tuple[str, ValidEvent]]
    request_key: tuple[str, str, str] | None


def prepare(
    items: list[ValidEvent | InputError],
    *,
    request_id: str,
    header_key: str | None,
    scope: str,
    body_sha256: str,
) -> PreparedRequest:
    """Key every valid event of a request; within it the first occurrence of a key counts."""
    keys: dict[int, Key] = {}
    first_index: dict[Key, int] = {}
    unique: list[tuple[str, ValidEvent]] = []
    for index, item in enumerate(items):
        if isinstance(item, InputError):
            continue
        key = effective_key(item, header_key, index)
        tenant_key = (item.tenant_id, key)
        keys[index] = tenant_key
        if tenant_key not in first_index:
            first_index[tenant_key] = index
            unique.append((key, item))
    request_key = None if header_key is None else (scope, header_key, body_sha256)
    return PreparedRequest(request_id, items, keys, first_index, unique, request_key)


def outcome_of(request: PreparedRequest, inserted: set[Key]) -> IngestOutcome:
    """Each event's fate, given the keys of `request` that the ledger really inserted."""
    outcome = IngestOutcome(request_id=request.request_id)
    for index, item in enumerate(request.items):
        if isinstance(item, InputError):
            error = {"code": item.code, "message": item.message, "field": item.field}
            outcome.results.append({"idempotencyKey": None, "status": "error", "error": error})
            outcome.errors.append({"index": index, "error": error})
            outcome.by_metric[(REJECTED_METRIC_LABEL, "rejected")] += 1
            continue
        tenant_key = request.keys[index]
        is_first = request.first_index[tenant_key] == index
        status: Status = "accepted" if is_first and tenant_key in inserted else "duplicate"
        if status == "accepted":
            outcome.accepted += 1
        else:
            outcome.duplicates += 1
        outcome.results.append({"idempotencyKey": tenant_key[1], "status": status})
        outcome.by_metric[(item.metric, status)] += 1
    return outcome


def _batch_json(rows: list[tuple[str, ValidEvent, str]]) -> str:
    """The rows `(key, event, request id)` as one JSON array for `jsonb_to_recordset`.

    One text parameter serialized by orjson is far cheaper than ten arrays adapted
    element by element; quantities travel as JSON numbers, which jsonb keeps as exact
    numerics, and `meta` is spliced in as the JSON text it already is.
    """
    fragment = orjson.Fragment
    return orjson.dumps(
        [
            {
                "t": e.tenant_id,
                "k": key,
                "m": e.metric,
                "c": e.customer_ref,
                "r": e.resource_id,
                "q": fragment(str(e.quantity)),
                "ts": e.ts,  # orjson writes RFC 3339 with the offset, 3x faster than isoformat
                "s": e.source,
                "meta": None if e.meta_json is None else fragment(e.meta_json),
                "rq": request_id,
            }
            for key, e, request_id in rows
        ]
    ).decode()


def _register_request(conn: psycopg.Connection, scope: str, key: str, body_sha256: str) -> bool:
    """Record the request's Idempotency-Key; False when it was used with another body."""
    row = conn.execute(
        "INSERT INTO ingest_requests (scope, idempotency_key, body_sha256)"
        " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
        (scope, key, body_sha256),
    ).fetchone()
    if row is not None:
        return True
    found = conn.execute(
        "SELECT body_sha256 FROM ingest_requests WHERE scope = %s AND idempotency_key = %s",
        (scope, key),
    ).fetchone()
    return found is None or found[0] == body_sha256


GroupResult = set[Key] | BaseException


def _store_together(pool: Pool, group: list[PreparedRequest]) -> list[GroupResult]:
    """Store a whole group in one transaction, one insert-and-count statement.

    Request-level keys are registered first, in (scope, key) order with ties in group
    order, so a key reused with another body inside the group conflicts for the later
    request, exactly as across groups. A key claimed by an earlier request of the group
    is not sent again: the later request gets `duplicate`, as if it had come next.
    """
    months = {partitions.month_of(ev.ts) for request in group for _, ev in request.unique}
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with pool.connection() as conn:
                conn.autocommit = True  # no request key: one statement, one round trip
                try:
                    partitions.ensure_months(conn, months)  # a no-op once a month exists
                    if all(r.request_key is None for r in group):
                        return _insert_group(conn, group, set())
                    with conn.transaction():
                        keyed = [(i, r.request_key) for i, r in enumerate(group) if r.request_key]
                        keyed.sort(key=lambda pair: pair[1][:2])  # stable: ties keep group order
                        refused = {i for i, rk in keyed if not _register_request(conn, *rk)}
                        return _insert_group(conn, group, refused)
                finally:
                    conn.autocommit = False
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
            if attempt == MAX_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.001, 0.01) * attempt)
    raise AssertionError("unreachable")


def _insert_group(
    conn: psycopg.Connection, group: list[PreparedRequest], refused: set[int]
) -> list[GroupResult]:
    """Run the statement for every unrefused request's unclaimed keys; split the result."""
    owner: dict[Key, int] = {}
    rows: list[tuple[str, ValidEvent, str]] = []
    for i, request in enumerate(group):
        if i in refused:
            continue
        for key, ev in request.unique:
            tenant_key = (ev.tenant_id, key)
            if tenant_key not in owner:
                owner[tenant_key] = i
                rows.append((key, ev, request.request_id))
    rows.sort(key=lambda row: (str(row[1].tenant_id), row[0]))  # one global lock order
    inserted: list[set[Key]] = [set() for _ in group]
    if rows:
        params = {"batch": _batch_json(rows)}
        for tenant_id, key in conn.execute(INSERT_AND_COUNT, params).fetchall():
            inserted[owner[(tenant_id, key)]].add((tenant_id, key))
    return [
        IdempotencyConflict(r.request_key[1]) if i in refused and r.request_key else inserted[i]
        for i, r in enumerate(group)
    ]


def store_group(pool: Pool, group: list[PreparedRequest]) -> list[GroupResult]:
    """Store a group of requests; per request, the keys inserted or the error it gets.

    Together when possible (one transaction). When the statement fails for something a
    request carries (a value PostgreSQL refuses, a trigger), each request is stored
    alone, so the failure reaches only the requests it belongs to and the others are
    stored as if they had come alone. When the database itself is the problem (no
    connection in time, a connection lost), every request of the group gets that error
    at once: retrying them one by one would only make each wait its own timeout.
    """
    try:
        return _store_together(pool, group)
    except _DATABASE_DOWN as exc:
        return [exc] * len(group)
    except Exception as exc:
        if len(group) == 1:
            return [exc]
    results: list[GroupResult] = []
    for request in group:
        try:
            results.extend(_store_together(pool, [request]))
        except Exception as exc:
            results.append(exc)
    return results


# Failures of the database rather than of a request's content (see `store_group`).
_DATABASE_DOWN = (DatabaseUnavailable, psycopg.OperationalError, psycopg.InterfaceError)


def ingest(
    pool: Pool,
    items: list[ValidEvent | InputError],
    *,
    request_id: str,
    header_key: str | None,
    scope: str,
    body_sha256: str,
) -> IngestOutcome:
    """Store the valid events of one request exactly once and report every event's fate.

    `items` holds, per index, either a validated event or the error that rejected it.
    Within one batch the first occurrence of a key counts; later ones are duplicates.
    Raises `IdempotencyConflict` (nothing stored) when `header_key` was used before
    with a different body. The API goes through `group.GroupCommitter` instead, which
    stores many requests in one statement with the same result per request.
    """
    request = prepare(
        items, request_id=request_id, header_key=header_key, scope=scope, body_sha256=body_sha256
    )
    result = store_group(pool, [request])[0] if request.unique else set()
    if isinstance(result, BaseException):
        raise result
    return outcome_of(request, result)


LIST_EVENTS = """
SELECT seq, tenant_id, idempotency_key, metric, customer_ref, resource_id, quantity, ts,
       source, meta, request_id, received_at
FROM events
WHERE tenant_id = %(tenant_id)s
  AND (%(metric)s::text IS NULL OR metric = %(metric)s)
  AND (%(customer_ref)s::text IS NULL OR customer_ref = %(customer_ref)s)
  AND (%(from)s::timestamptz IS NULL OR ts >= %(from)s)
  AND (%(to)s::timestamptz IS NULL OR ts < %(to)s)
  AND (%(after_ts)s::timestamptz IS NULL OR (ts, seq) < (%(after_ts)s, %(after_seq)s))
ORDER BY ts DESC, seq DESC
LIMIT %(limit)s
"""


def list_events(conn: psycopg.Connection, filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Events newest first (by event time, then arrival) for the filters of `LIST_EVENTS`."""
    rows = conn.execute(LIST_EVENTS, filters).fetchall()
    return [
        {
            "seq": row[0],
            "tenantId": str(row[1]),
            "idempotencyKey": row[2],
            "metric": row[3],
            "customerRef": row[4],
            "resourceId": row[5],
            "quantity": row[6],
            "ts": iso(row[7]),
            "source": row[8],
            "meta": row[9],
            "requestId": row[10],
            "receivedAt": iso(row[11]),
        }
        for row in rows
    ]
