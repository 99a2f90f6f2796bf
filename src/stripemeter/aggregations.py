"""Everything that differs per aggregation kind of a price mapping, in one table.

A mapping bills its metric's usage as one of these kinds. Each kind says which hourly
bucket column holds its value, which Stripe meter formula can bill it, how the writer
pushes it (deltas or absolute values), and how the reconciler computes the local value
of a billing period. The writer (`stripemeter.writer`), the reconciler
(`stripemeter.reconciler`), the meter check (`stripemeter.mappings.meters`) and the API
read these entries instead of naming kinds themselves, so adding a kind is an entry here
plus a migration widening the CHECK constraints on `price_mappings.aggregation` and
`push_state.aggregation` (as `0011_count_aggregation.sql` did for `count`).

- `sum`: the sum of quantities. Pushed as deltas of whole units to a `sum` meter, with
  sub-unit carry: fractions carry across the hours of one billing period, so the whole
  units pushed for a period are floor(period total) (0.5 in one hour and 0.5 in the next
  bill 1 unit). The final remainder of a period (< 1 unit) is not pushed and not
  carried into the next period: Stripe meter values are whole numbers and a period's
  invoice bills only its own events. The reconciler's local total keeps the exact sum,
  so the remainder shows in every report (`ok` within RECONCILIATION_EPSILON).
- `max`: the period's maximum quantity. Stripe has no `max` formula: the writer pushes the
  running maximum of the period (it never decreases) to a `last` meter, so the period's
  latest event carries its maximum.
- `last`: the latest quantity (by event time). Pushed as absolute values to a `last` meter.
- `count`: the number of usage events; quantities are ignored, and an event sent again
  under the same idempotency key is not counted twice (the ledger keeps it once, and the
  hourly bucket's `event_count` counts ledger rows). It is pushed like `sum`, as deltas
  of the bucket's event count to a meter with the `sum` formula. A Stripe meter with the
  `count` formula cannot bill it: such a meter counts meter events, and the writer sends
  one event per outbox row whatever the delta, so a delta of 5 would bill as 1. Sending
  one event per counted usage event instead would multiply the calls to Stripe and the
  identifiers to keep exactly once; with deltas to a `sum` meter every retry, crash and
  late event goes through the same outbox path as `sum`. `ensure_meter` therefore
  refuses a `count` meter for a `count` mapping (`meter_formula_mismatch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from enum import Enum
from typing import Literal, get_args

AggregationName = Literal["sum", "max", "last", "count"]


class PushMode(Enum):
    """How the writer turns a bucket's value into meter events."""

    # Each event carries the whole units not yet covered; the meter sums the events.
    DELTA = "delta"
    # Each event carries the whole value; the meter bills the period's latest event.
    ABSOLUTE = "absolute"


@dataclass(frozen=True)
class Aggregation:
    """One aggregation kind: what the writer, the reconciler and the meter check need."""

    name: AggregationName
    # The `usage_buckets` column holding the kind's value of one hour.
    bucket_column: str
    # The Stripe meter formula that bills what the writer pushes for this kind.
    meter_formula: str
    # Why that formula, for the error refusing another one.
    formula_reason: str
    push: PushMode
    # max only: the value pushed for an hour is the period's maximum up to that hour.
    running_max: bool
    # The local value of a billing period: (exact value, whole units the writer pushes for
    # it) over the buckets matching `{window}`, a WHERE condition on `usage_buckets`.
    # The whole units hold for a window that is one billing period (sum: floor of the
    # period's exact total, because fractions carry across its hours).
    period_sql: str
    # Whether the writer holds back sub-unit remainders: Stripe then bills the period's
    # whole units (`period_sql`'s second column), which is what the reconciler compares.
    holds_back_fractions: bool
    # Whether fractions carry across the hours of a billing period (the writer's targets
    # are floor(running period total) differences, not each hour's own floor).
    carries_fractions: bool = False

    def accounted(self, value: Decimal | None) -> Decimal:
        """The bucket value a series records as accounted for (`push_state.source_value`):
        the exact value for a kind that carries fractions (any change may move the
        period's whole units), else its whole units. `accounted_value` is the same in SQL."""
        exact = Decimal(0) if value is None else value
        if self.carries_fractions:
            return exact
        return exact.to_integral_value(rounding=ROUND_FLOOR)

    def accounted_value(self, table: str = "b") -> str:
        """SQL of `accounted` for the bucket in alias `table`."""
        value = f"coalesce({self.bucket_value(table)}, 0)"
        return value if self.carries_fractions else f"floor({value})"

    def bucket_value(self, table: str = "b") -> str:
        """SQL for the hour's value of this kind (numeric) in bucket alias `table`."""
        return f"{table}.{self.bucket_column}::numeric"

    def uncovered_units(self, bucket: str = "b", state: str = "s") -> str:
        """SQL for the units of an uncovered bucket the outbox (push_state alias `state`)
        does not account for yet.

        For a kind that carries fractions this is the usage added since the series last
        accounted for the bucket (exact, fractional): what one bucket owes Stripe is not
        its own (an hour's whole units depend on the period's earlier hours).
        """
        value = f"coalesce({self.bucket_value(bucket)}, 0)"
        if self.carries_fractions:
            return f"{value} - coalesce({state}.source_value, 0)"
        covered = f"coalesce({state}.covered, 0)"
        if self.push is PushMode.DELTA:
            return f"{value} - {covered}"
        return f"abs({value} - {covered})"


_KINDS: tuple[Aggregation, ...] = (
    Aggregation(
        name="sum",
        bucket_column="total",
        meter_formula="sum",
        formula_reason="the writer pushes whole-unit deltas that Stripe adds up",
        push=PushMode.DELTA,
        running_max=False,
        period_sql=(
            "SELECT coalesce(sum(total), 0), floor(coalesce(sum(total), 0))"
            " FROM usage_buckets WHERE {window}"
        ),
        holds_back_fractions=True,
        carries_fractions=True,
    ),
    Aggregation(
        name="max",
        bucket_column="max_value",
        meter_formula="last",
        formula_reason="Stripe has no max formula; the writer pushes running maxima",
        push=PushMode.ABSOLUTE,
        running_max=True,
        period_sql=(
            "SELECT coalesce(max(max_value), 0), floor(coalesce(max(max_value), 0))"
            " FROM usage_buckets WHERE {window}"
        ),
        holds_back_fractions=False,
    ),
    Aggregation(
        name="last",
        bucket_column="last_value",
        meter_formula="last",
        formula_reason="the writer pushes each hour's latest value",
        push=PushMode.ABSOLUTE,
        running_max=False,
        period_sql=(
            "SELECT coalesce(last_value, 0), floor(coalesce(last_value, 0))"
            " FROM usage_buckets WHERE {window}"
            " ORDER BY last_ts DESC NULLS LAST, hour_start DESC LIMIT 1"
        ),
        holds_back_fractions=False,
    ),
    Aggregation(
        name="count",
        bucket_column="event_count",
        meter_formula="sum",
        formula_reason=(
            "the writer pushes event-count deltas that Stripe adds up; a 'count' meter"
            " would bill each delta as 1"
        ),
        push=PushMode.DELTA,
        running_max=False,
        period_sql=(
            "SELECT coalesce(sum(event_count), 0), coalesce(sum(event_count), 0)"
            " FROM usage_buckets WHERE {window}"
        ),
        holds_back_fractions=False,
    ),
)

# Every kind by name. `price_mappings.aggregation` and `push_state.aggregation` are
# CHECK-constrained to these names, so a name read from the database is always here.
AGGREGATIONS: dict[AggregationName, Aggregation] = {kind.name: kind for kind in _KINDS}

if set(AGGREGATIONS) != set(get_args(AggregationName)):
    raise RuntimeError("AggregationName and the aggregation table must name the same kinds")


def per_kind_sql(kind_column: str, expression: Callable[[Aggregation], str]) -> str:
    """A SQL CASE over `kind_column` (a column holding a kind's name) giving, for each
    kind, `expression(kind)`: how SQL that spans mappings of every kind says one rule."""
    branches = " ".join(
        f"WHEN '{kind.name}' THEN {expression(kind)}" for kind in AGGREGATIONS.values()
    )
    return f"CASE {kind_column} {branches} END"
