"""What each meter aggregation means, in one map (rule 3 of the design).

For every aggregation, AGGREGATIONS says how a day's value is computed from the
day's events of one member tenant (SQL), how a period's value is folded from the
day values, and how events that arrived after their day was rolled up (the
real-time tail) reach a summary:

- ADDS: the day value is a sum, so a stored day plus the new events' values is
  the day's value (sum, count); compaction may add the tail to stored days.
- RECOMPUTES_DAY: a gauge; a day with new events is recomputed from its raw
  events (max, latest).
- COUNTS_DISTINCT: the period counts distinct (member, value) pairs, kept per
  month as day masks (DistinctValue) by the rollup, plus the tail's pairs.

Adding an aggregation is one entry here (and its choice on Meter).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from billing.usage.sql import placeholders, unique_value_sql
from metering.models import Meter

ADDS = "adds"
RECOMPUTES_DAY = "recomputes day"
COUNTS_DISTINCT = "counts distinct"

# A period's day values of one group and meter, sorted by day: (day, value, events).
DayValues = list[tuple[date, Decimal, int]]


@dataclass(frozen=True)
class EventRead:
    """The pieces every day-value SELECT shares: which events, keyed how."""

    events: str  # FROM clause naming the events `e` (and a joined day, see day_values)
    joins: str  # further joins (the tenant `t`, for a subtree)
    condition: str
    params: list
    keys: str  # what a day value groups by: tenant, meter, day, dimension, source
    selected: str  # the same five columns as selected, the day named `day`
    selected_params: list  # parameters of `selected` (a read of one day names it)


def sum_of_days(days: DayValues) -> Decimal:
    return sum((value for _, value, _ in days), Decimal(0))


def largest_day(days: DayValues) -> Decimal:
    seen = [value for _, value, events in days if events]
    return max(seen) if seen else Decimal(0)


def last_day(days: DayValues) -> Decimal:
    return next((value for _, value, events in reversed(days) if events), Decimal(0))


def latest_day_sql(read: EventRead, meter_ids: list[int]) -> tuple[str, list]:
    """The value of the day's last event (ties broken by arrival order)."""
    sql = (
        "SELECT tenant_id, meter_id, day, dimension, source, quantity AS value, n FROM ("
        f"SELECT {read.selected}, e.quantity, "
        f"ROW_NUMBER() OVER (PARTITION BY {read.keys} ORDER BY e.occurred_at DESC, e.id DESC) "
        f"AS rn, COUNT(*) OVER (PARTITION BY {read.keys}) AS n "
        f"FROM {read.events}{read.joins} WHERE {read.condition} "
        f"AND e.meter_id IN ({placeholders(meter_ids)})) latest_events WHERE rn = 1"
    )
    return sql, [*read.selected_params, *read.params, *meter_ids]


def distinct_day_sql(read: EventRead, meter_ids: list[int]) -> tuple[str, list]:
    """The number of distinct values of the meter's unique_key attribute that day."""
    sql = (
        f"SELECT {read.selected}, COUNT(DISTINCT {unique_value_sql()}) AS value, "
        f"COUNT(*) AS n FROM {read.events} JOIN metering_meter mt ON mt.id = e.meter_id"
        f"{read.joins} WHERE {read.condition} AND e.meter_id IN ({placeholders(meter_ids)}) "
        f"GROUP BY {read.keys}"
    )
    return sql, [*read.selected_params, *read.params, *meter_ids]


@dataclass(frozen=True)
class Aggregation:
    tail: str  # ADDS, RECOMPUTES_DAY or COUNTS_DISTINCT
    # The day value as one aggregate over the group's events: every such meter is
    # computed in one shared grouped pass (see day_values.grouped_pass_sql).
    day_value: str | None = None
    # Otherwise a SELECT of its own: (read, meter ids) -> (sql, params).
    day_sql: Callable[[EventRead, list[int]], tuple[str, list]] | None = None
    # ADDS only: one event's contribution to the day value, as SQL over `e`, and a
    # group of new events' contribution from their (quantity sum, count).
    event_value: str | None = None
    tail_value: Callable[[Decimal, int], Decimal] | None = None
    # Day values -> the period's value; None when the period counts distinct pairs.
    fold: Callable[[DayValues], Decimal] | None = None


AGGREGATIONS: dict[str, Aggregation] = {
    Meter.Aggregation.SUM: Aggregation(
        tail=ADDS,
        day_value="SUM(e.quantity)",
        event_value="e.quantity",
        tail_value=lambda quantity, events: quantity,
        fold=sum_of_days,
    ),
    Meter.Aggregation.COUNT: Aggregation(
        tail=ADDS,
        day_value="COUNT(*)",
        event_value="1",
        tail_value=lambda quantity, events: Decimal(events),
        fold=sum_of_days,
    ),
    Meter.Aggregation.MAX: Aggregation(
        tail=RECOMPUTES_DAY, day_value="MAX(e.quantity)", fold=largest_day
    ),
    Meter.Aggregation.LATEST: Aggregation(
        tail=RECOMPUTES_DAY, day_sql=latest_day_sql, fold=last_day
    ),
    Meter.Aggregation.UNIQUE_COUNT: Aggregation(tail=COUNTS_DISTINCT, day_sql=distinct_day_sql),
}


def aggregations_where(tail: str) -> list[str]:
    """The aggregations whose tail behaves so (ADDS, RECOMPUTES_DAY, COUNTS_DISTINCT)."""
    return [name for name, rule in AGGREGATIONS.items() if rule.tail == tail]


def rule_of(meter: Meter) -> Aggregation:
    return AGGREGATIONS[meter.aggregation]
