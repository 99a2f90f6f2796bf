"""The writer's outbox: what it decided to send to Stripe, committed before sending.

Two tables (migration 0004):

- `push_state`, one row per *series*: a source bucket (tenant, metric, customer, hour)
  pushed to one destination meter (its `event_name`). `covered` is what the series'
  outbox rows add up to, sent or not, so a new delta is always computed against
  pushed + outstanding and a lost answer is never sent again under a new identifier.
- `meter_pushes`, the outbox rows: identifier, value, timestamp and the payload keys.
  `pending` until Stripe accepted it (or said it already has the identifier), then
  `sent`; `quarantined` when Stripe refused it for good (the reason is kept and the
  customer's other buckets keep flowing).

The series is keyed by the meter, not by the mapping: a mapping deleted and created
again for the same meter continues the series (nothing is sent twice), a mapping moved
to another meter starts a new series there.

Every function here only executes SQL on the connection it is given; committing is the
caller's job, so "row written" and "state advanced" always commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from stripemeter.aggregations import AggregationName
from stripemeter.stripe.gateway import MeterInfo
from stripemeter.writer.identifiers import outbox_identifier

_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class Series:
    """A source bucket and the meter it is pushed to."""

    tenant_id: str
    metric: str
    customer_ref: str
    hour_start: datetime
    event_name: str


@dataclass(frozen=True)
class SeriesSource:
    """What a series accounts for: the Stripe customer and mapping (with its aggregation
    kind) it is pushed for, and the bucket value it accounted for
    (`Aggregation.accounted`: exact for `sum`, whose fractions carry across a period's
    hours, else whole units; series written before sub-unit carry hold whole units, so
    a fractional `sum` bucket of theirs is pending once and recomputed)."""

    stripe_customer_id: str
    mapping_id: UUID
    aggregation: AggregationName
    source_value: Decimal


@dataclass(frozen=True)
class OutboxRow:
    """One meter event the writer decided to send (a row of `meter_pushes`)."""

    seq: int
    series: Series
    stripe_customer_id: str
    meter_id: str
    customer_key: str
    value_key: str
    value: int
    identifier: str
    event_ts: int
    attempts: int
    first_attempt_at: datetime | None

    def meter(self) -> MeterInfo:
        """The meter payload this row is sent with (independent of any mapping)."""
        return MeterInfo(
            meter_id=self.meter_id,
            event_name=self.series.event_name,
            customer_key=self.customer_key,
            value_key=self.value_key,
            formula="",
        )


_ROW_COLUMNS = (
    "seq, tenant_id, metric, customer_ref, hour_start, event_name, stripe_customer_id,"
    " meter_id, customer_key, value_key, value, identifier, event_ts, attempts,"
    " first_attempt_at"
)


def _row(record: dict[str, object]) -> OutboxRow:
    series = Series(
        tenant_id=record["tenant_id"],  # type: ignore[arg-type]
        metric=str(record["metric"]),
        customer_ref=str(record["customer_ref"]),
        hour_start=record["hour_start"],  # type: ignore[arg-type]
        event_name=str(record["event_name"]),
    )
    return OutboxRow(
        seq=int(record["seq"]),  # type: ignore[call-overload]
        series=series,
        stripe_customer_id=str(record["stripe_customer_id"]),
        meter_id=str(record["meter_id"]),
        customer_key=str(record["customer_key"]),
        value_key=str(record["value_key"]),
        value=int(record["value"]),  # type: ignore[call-overload]
        identifier=str(record["identifier"]),
        event_ts=int(record["event_ts"]),  # type: ignore[call-overload]
        attempts=int(record["attempts"]),  # type: ignore[call-overload]
        first_attempt_at=record["first_attempt_at"],  # type: ignore[arg-type]
    )


def customers_with_pending(
    conn: psycopg.Connection, tenant_id: str | None = None
) -> list[tuple[str, str]]:
    """(tenant, customerRef) pairs that have outbox rows not yet sent, in a stable order."""
    rows = conn.execute(
        "SELECT DISTINCT tenant_id, customer_ref FROM meter_pushes WHERE status = 'pending'"
        " AND (%(t)s::text IS NULL OR tenant_id = %(t)s::text) ORDER BY 1, 2",
        {"t": tenant_id},
    ).fetchall()
    return [(r[0], str(r[1])) for r in rows]


def pending_rows(conn: psycopg.Connection, tenant_id: str, customer_ref: str) -> list[OutboxRow]:
    """The customer's unsent outbox rows, oldest first (the order they must go in)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_ROW_COLUMNS} FROM meter_pushes WHERE status = 'pending'"
            " AND tenant_id = %s AND customer_ref = %s ORDER BY seq",
            (tenant_id, customer_ref),
        )
        return [_row(r) for r in cur.fetchall()]


def pending_rows_of_all(conn: psycopg.Connection, tenant_id: str | None) -> list[OutboxRow]:
    """Every unsent outbox row (of one tenant, or of all), oldest first: what the v2
    transport sends in batches across customers."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            f"SELECT {_ROW_COLUMNS} FROM meter_pushes WHERE status = 'pending'"
            " AND (%(t)s::text IS NULL OR tenant_id = %(t)s::text) ORDER BY seq",
            {"t": tenant_id},
        )
        return [_row(r) for r in cur.fetchall()]


def still_pending(conn: psycopg.Connection, rows: list[OutboxRow]) -> list[OutboxRow]:
    """Those of `rows` that are still pending (another writer may have sent some)."""
    found = conn.execute(
        "SELECT seq FROM meter_pushes WHERE status = 'pending' AND seq = ANY(%s)",
        ([row.seq for row in rows],),
    ).fetchall()
    pending = {int(r[0]) for r in found}
    return [row for row in rows if row.seq in pending]


def add_push(
    conn: psycopg.Connection,
    series: Series,
    source: SeriesSource,
    *,
    meter: MeterInfo,
    value: int,
    covered_after: Decimal,
    event_ts: int,
) -> OutboxRow:
    """Write one outbox row and advance the series' state (not committed here).

    `covered_after` is the series' covered value once this row counts (deltas: previous
    covered + value; absolute values: the value itself).
    """
    seq_row = conn.execute(
        "SELECT nextval(pg_get_serial_sequence('meter_pushes', 'seq'))"
    ).fetchone()
    assert seq_row is not None
    seq = int(seq_row[0])
    identifier = outbox_identifier(
        series.tenant_id,
        series.metric,
        series.event_name,
        series.customer_ref,
        series.hour_start,
        seq,
    )
    record_source(conn, series, source, covered=covered_after, pushes=1)
    conn.execute(
        "INSERT INTO meter_pushes (seq, tenant_id, metric, customer_ref, hour_start,"
        " event_name, stripe_customer_id, mapping_id, meter_id, customer_key, value_key,"
        " value, covers, identifier, event_ts, first_attempt_at)"
        " OVERRIDING SYSTEM VALUE"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())",
        (
            seq,
            series.tenant_id,
            series.metric,
            series.customer_ref,
            series.hour_start,
            series.event_name,
            source.stripe_customer_id,
            source.mapping_id,
            meter.meter_id,
            meter.customer_key,
            meter.value_key,
            value,
            covered_after,
            identifier,
            event_ts,
        ),
    )
    return OutboxRow(
        seq=seq,
        series=series,
        stripe_customer_id=source.stripe_customer_id,
        meter_id=meter.meter_id,
        customer_key=meter.customer_key,
        value_key=meter.value_key,
        value=value,
        identifier=identifier,
        event_ts=event_ts,
        attempts=0,
        first_attempt_at=None,
    )


def record_source(
    conn: psycopg.Connection,
    series: Series,
    source: SeriesSource,
    *,
    covered: Decimal,
    pushes: int = 0,
    status: str = "active",
) -> None:
    """Note the bucket value a series accounted for, and `pushes` new outbox rows.

    `status` other than `active` parks the series: `post_close` (its period is invoiced)
    or `too_old` (beyond Stripe's 35 days).
    """
    conn.execute(
        "INSERT INTO push_state (tenant_id, metric, customer_ref, hour_start, event_name,"
        " stripe_customer_id, aggregation, mapping_id, source_value, covered, push_count,"
        " status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant_id, metric, customer_ref, hour_start, event_name) DO UPDATE SET"
        " stripe_customer_id = EXCLUDED.stripe_customer_id,"
        " aggregation = EXCLUDED.aggregation, mapping_id = EXCLUDED.mapping_id,"
        " source_value = EXCLUDED.source_value, covered = EXCLUDED.covered,"
        " push_count = push_state.push_count + EXCLUDED.push_count,"
        " status = EXCLUDED.status, updated_at = now()",
        (
            series.tenant_id,
            series.metric,
            series.customer_ref,
            series.hour_start,
            series.event_name,
            source.stripe_customer_id,
            source.aggregation,
            source.mapping_id,
            source.source_value,
            covered,
            pushes,
            status,
        ),
    )


def mark_sent(conn: psycopg.Connection, row: OutboxRow, outcome: str) -> None:
    """Stripe has the row's event (`accepted`, `duplicate`, or `found` in its summary)."""
    conn.execute(
        "UPDATE meter_pushes SET status = 'sent', sent_at = now(), outcome = %s,"
        " attempts = attempts + 1, error = NULL WHERE seq = %s AND status = 'pending'",
        (outcome, row.seq),
    )


def mark_batch_sent(conn: psycopg.Connection, rows: list[OutboxRow], outcome: str) -> None:
    """`mark_sent` for every row of a v2 stream request Stripe took."""
    conn.execute(
        "UPDATE meter_pushes SET status = 'sent', sent_at = now(), outcome = %s,"
        " attempts = attempts + 1, error = NULL WHERE seq = ANY(%s) AND status = 'pending'",
        (outcome, [row.seq for row in rows]),
    )


def mark_attempt_failed(conn: psycopg.Connection, row: OutboxRow, error: str) -> None:
    """A send did not get an answer Stripe stands by; the row stays pending."""
    conn.execute(
        "UPDATE meter_pushes SET attempts = attempts + 1, error = %s"
        " WHERE seq = %s AND status = 'pending'",
        (error[:_MAX_ERROR_CHARS], row.seq),
    )


def quarantine(conn: psycopg.Connection, row: OutboxRow, reason: str) -> None:
    """Stripe refused the row for good: keep it out of the way, with the reason.

    Its value stays counted in the series' `covered`, so the same refused units are
    not proposed again; later usage in the bucket becomes a new row of its own.
    """
    conn.execute(
        "UPDATE meter_pushes SET status = 'quarantined', attempts = attempts + 1, error = %s"
        " WHERE seq = %s AND status = 'pending'",
        (reason[:_MAX_ERROR_CHARS], row.seq),
    )


def sent_units_in_hour(conn: psycopg.Connection, row: OutboxRow) -> Decimal:
    """Units of the rows already known sent to the row's meter, customer and hour."""
    found = conn.execute(
        "SELECT coalesce(sum(value), 0) FROM meter_pushes WHERE status = 'sent'"
        " AND event_name = %s AND stripe_customer_id = %s AND hour_start = %s",
        (row.series.event_name, row.stripe_customer_id, row.series.hour_start),
    ).fetchone()
    return Decimal(found[0]) if found else Decimal(0)


def quarantined_summary(conn: psycopg.Connection, tenant_id: str | None) -> tuple[int, Decimal]:
    """(rows, units) Stripe refused for good, for one tenant or all (`/v1/writer/status`)."""
    found = conn.execute(
        "SELECT count(*), coalesce(sum(value), 0) FROM meter_pushes"
        " WHERE status = 'quarantined' AND (%(t)s::text IS NULL OR tenant_id = %(t)s::text)",
        {"t": tenant_id},
    ).fetchone()
    assert found is not None
    return int(found[0]), Decimal(found[1])
