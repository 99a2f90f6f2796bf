"""Model test of the push protocol: Stripe's total equals the ledger after any faults.

Hypothesis generates schedules of {usage into one of a few hours, a writer pass} where
each pass may meet one fault: a crash before the send, a crash after Stripe stored the
event but before any answer, a crash after the answer before the row is marked, Stripe
storing the event and answering 500 (once, or on every attempt), or 429s. A crash is a
`SimulatedCrash` raised from the writer's stage seam; the connection is then closed
without committing, as a dying process's would be. After the schedule the writer drains
with no faults, and Stripe's meter summary for the customer must have grown by exactly
the ledger's whole units: floor of the period's total (every hour of a schedule is in
one billing period, and `sum` fractions carry across its hours).

Everything is real: PostgreSQL, the emulator over HTTP, the `stripe` SDK. One world
(meter, price, customer on a clock) serves every example; each example uses a metric of
its own, so its outbox and its Stripe total are its own. STRIPEMETER_MODEL_EXAMPLES sets
the number of examples (default 2,000, the issue's bar).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal

import psycopg
import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stripemeter.db.pool import Pool, open_pool
from stripemeter.ingest import ledger
from stripemeter.ingest.validation import ValidEvent
from stripemeter.stripe.gateway import RetryPolicy, StripeGateway
from stripemeter.writer import buckets as writer_buckets
from stripemeter.writer import passes as writer
from stripemeter.writer.outbox import OutboxRow
from tests.support.stripe_world import HOUR, build_world, fault, settings_for

EXAMPLES = int(os.environ.get("STRIPEMETER_MODEL_EXAMPLES", "2000"))
RETRY = RetryPolicy(attempts=3, base_delay_s=0.0005, max_delay_s=0.001)
HOURS = 3  # few hours, so that new usage often lands in an hour already pushed


class SimulatedCrash(BaseException):
    """The writer process 'dies' here (BaseException: nothing in the writer catches it)."""


# A fault is (emulator rule or None, the stage at which the process dies, or None).
FAULTS: dict[str, tuple[dict[str, object] | None, str | None]] = {
    "none": (None, None),
    "crash_before_send": (None, "before_send"),
    "crash_after_commit_of_row": (None, "committed"),
    "crash_stored_no_answer": ({"status": 500, "count": 3, "after_commit": True}, "unanswered"),
    "crash_after_answer": (None, "answered"),
    "stored_then_500_once": ({"status": 500, "count": 1, "after_commit": True}, None),
    "stored_then_500_always": ({"status": 500, "count": 3, "after_commit": True}, None),
    "rate_limited_once": ({"status": 429, "count": 1}, None),
    "rate_limited_always": ({"status": 429, "count": 3}, None),
}

usage_step = st.tuples(
    st.just("usage"),
    st.integers(min_value=0, max_value=HOURS - 1),
    st.sampled_from([Decimal(1), Decimal(3), Decimal(10), Decimal("0.5"), Decimal("2.5")]),
)
pass_step = st.tuples(st.just("pass"), st.sampled_from(sorted(FAULTS)), st.integers(1, 2))
schedules = st.lists(st.one_of(usage_step, pass_step), min_size=1, max_size=10)


@dataclass
class Model:
    """The shared world and what the examples need of it."""

    emulator_url: str
    db_url: str
    tenant_id: uuid.UUID
    customer: str
    price_id: str
    meter_id: str
    base_hour: int
    period_start: int
    frozen: int
    gateway: StripeGateway
    pool: Pool


@pytest.fixture
def model(emulator_url: str, db_url: str) -> Iterator[Model]:
    world = build_world(emulator_url, db_url, customers=1)
    customer = world.customers[0]
    with psycopg.connect(db_url) as conn:
        conn.execute("DELETE FROM price_mappings")  # each example maps a metric of its own
        conn.execute(
            "INSERT INTO customer_bindings (tenant_id, customer_ref, stripe_customer_id)"
            " VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (world.tenant_id, customer, customer),
        )
    frozen = world.frozen_time()
    pool = open_pool(db_url, max_size=1, wait=True)
    yield Model(
        emulator_url=emulator_url,
        db_url=db_url,
        tenant_id=world.tenant_id,
        customer=customer,
        price_id=world.price_id,
        meter_id=world.meter_id,
        base_hour=(frozen // HOUR - 6) * HOUR,
        period_start=world.period_start,
        frozen=frozen,
        gateway=StripeGateway(world.client, retry=RETRY, clock_cache_s=60.0),
        pool=pool,
    )
    writer_buckets.STAGE_HOOK = None
    pool.close()


def _stripe_total(m: Model) -> Decimal:
    end = (m.frozen // 60 + 1) * 60
    return m.gateway.meter_total(m.meter_id, m.customer, m.period_start // 60 * 60, end)


def _clear_faults(m: Model) -> None:
    answer = requests.delete(f"{m.emulator_url}/_emulator/faults", timeout=10)
    assert answer.status_code == 200, answer.text


def _run_pass(m: Model, fault_name: str, crash_at_occurrence: int) -> None:
    rule, crash_stage = FAULTS[fault_name]
    if rule is not None:
        fault(m.emulator_url, method="POST", path="/v1/billing/meter_events", **rule)
    seen = 0

    def hook(stage: str, row: OutboxRow) -> None:
        nonlocal seen
        if stage == crash_stage:
            seen += 1
            if seen == crash_at_occurrence:
                raise SimulatedCrash(stage)

    writer_buckets.STAGE_HOOK = hook if crash_stage else None
    conn = psycopg.connect(m.db_url)
    try:
        writer.push_pending(conn, m.gateway, settings_for(m.emulator_url, m.db_url), m.tenant_id)
    except SimulatedCrash:
        pass  # the process died: nothing after this point happened
    finally:
        writer_buckets.STAGE_HOOK = None
        conn.close()  # uncommitted work is lost, the session's advisory lock released
        _clear_faults(m)


def _ingest(m: Model, event: ValidEvent) -> None:
    outcome = ledger.ingest(
        m.pool, [event], request_id="model", header_key=None, scope="model", body_sha256=""
    )
    assert outcome.accepted == 1


# 2,000 schedules take 5-10 minutes on this machine's 2 cores: past the suite's default.
@pytest.mark.timeout(1800)
def test_stripe_total_equals_ledger_for_every_interleaving_of_faults(model: Model) -> None:
    m = model
    counter = iter(range(10**9))

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(schedule=schedules)
    # Found by CI at 2,000 schedules: the pass accounted hour 0 and died after Stripe's
    # answer, before it wrote the row the same plan gave hour 1, whose own bucket had not
    # changed; nothing looked uncovered afterwards and 1 of 2 units never reached Stripe.
    @example(
        schedule=[
            ("usage", 1, Decimal("0.5")),
            ("pass", "crash_after_answer", 1),
            ("usage", 0, Decimal("1")),
            ("usage", 0, Decimal("0.5")),
            ("pass", "crash_after_answer", 1),
        ]
    )
    def one_schedule(schedule: list[tuple[str, object, object]]) -> None:
        metric = f"m{next(counter)}"
        with psycopg.connect(m.db_url) as conn:
            conn.execute("DELETE FROM price_mappings")
            conn.execute(
                "INSERT INTO price_mappings (tenant_id, metric, aggregation, price_id)"
                " VALUES (%s, %s, 'sum', %s)",
                (m.tenant_id, metric, m.price_id),
            )
        before = _stripe_total(m)
        buckets: dict[int, Decimal] = {}
        for n, step in enumerate(schedule):
            if step[0] == "usage":
                hour = m.base_hour + int(step[1]) * HOUR  # type: ignore[call-overload]
                quantity = Decimal(step[2])  # type: ignore[arg-type]
                buckets[hour] = buckets.get(hour, Decimal(0)) + quantity
                event = ValidEvent(
                    tenant_id=m.tenant_id,
                    metric=metric,
                    customer_ref=m.customer,
                    quantity=quantity,
                    ts=datetime.fromtimestamp(hour + 60 + n, UTC),
                    idempotency_key=f"{metric}-{n}",
                    resource_id=None,
                    source=None,
                    meta_json=None,
                )
                _ingest(m, event)
            else:
                _run_pass(m, str(step[1]), int(step[2]))  # type: ignore[call-overload]
        with psycopg.connect(m.db_url) as conn:
            result = writer.drain(conn, m.gateway, settings_for(m.emulator_url, m.db_url))
            pending = conn.execute(
                "SELECT count(*) FROM meter_pushes WHERE metric = %s AND status <> 'sent'",
                (metric,),
            ).fetchone()
        expected = sum(buckets.values(), Decimal(0)).to_integral_value(rounding=ROUND_FLOOR)
        assert not result.errors, result.errors
        assert pending == (0,)
        assert _stripe_total(m) - before == expected, (schedule, before, expected)

    started = time.monotonic()
    one_schedule()
    print(f"model: {EXAMPLES} schedules in {time.monotonic() - started:.1f} s")
