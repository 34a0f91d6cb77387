"""Per-member daily values of usage events, in SQL: the first step of rule 3.

"Aggregate over time per tenant first, then over tenants": for every member
tenant, meter, UTC day, dimension and source this computes the day's value by
the meter's aggregation (billing.usage.aggregations). Subtree totals are then
sums of member values, which is what the rollup stores and what the real-time
tail adds up.
"""

from datetime import date

from django.db import connection

from billing.periods import day_bounds
from billing.usage import clickhouse_reads
from billing.usage.aggregations import AGGREGATIONS, EventRead
from billing.usage.sql import day_parameter_sql, event_day_sql, placeholders
from metering.models import Meter
from metering.stores import uses_clickhouse

# A SELECT with the columns of member values and no rows.
NO_VALUES = (
    "SELECT e.tenant_id, e.meter_id, e.occurred_at AS day, e.dimension, e.source, "
    "e.quantity AS value, 1 AS n FROM metering_usageevent e WHERE 1 = 0"
)


def member_values_sql(
    *,
    first: date,
    last: date,
    max_event_id: int | None = None,
    subtree: tuple[str, list] | None = None,
    meter_ids: list[int] | None = None,
    days: list[date] | None = None,
    parallel: bool = False,
    bounded: bool = True,
) -> tuple[str, list]:
    """SQL selecting (tenant_id, meter_id, day, dimension, source, value, n).

    One row per member tenant, meter, day, dimension and source between `first`
    and `last`, optionally only for events with id ≤ `max_event_id`, inside one
    subtree (a condition on the tenant `t`: Tenant.subtree_sql), for some meters,
    or on some days. `parallel` and `bounded`: see event_read.
    """
    if uses_clickhouse():
        return clickhouse_reads.member_values_sql(
            first=first, last=last, max_event_id=max_event_id, subtree=subtree,
            meter_ids=meter_ids, days=days,
        )  # fmt: skip
    read = event_read(
        first=first, last=last, max_event_id=max_event_id, subtree=subtree,
        meter_ids=meter_ids, days=days, parallel=parallel, bounded=bounded,
    )  # fmt: skip
    by_aggregation = meters_by_aggregation(meter_ids)
    parts = [grouped_pass_sql(read, by_aggregation)]
    for name, rule in AGGREGATIONS.items():
        if rule.day_sql is not None and by_aggregation[name]:
            parts.append(rule.day_sql(read, by_aggregation[name]))
    parts = [part for part in parts if part is not None]
    if not parts:
        return NO_VALUES, []
    return " UNION ALL ".join(sql for sql, _ in parts), [p for _, ps in parts for p in ps]


def event_read(
    *, first, last, max_event_id, subtree, meter_ids, days, parallel, bounded
) -> EventRead:
    """Which events a read of member values covers.

    `parallel` shapes the SQL for a large read (the rollup's): on PostgreSQL the
    day is taken from a one-row LATERAL unnest() instead of grouping by the
    expression itself. The planner estimates a group count from the statistics of
    the columns inside a GROUP BY expression, and occurred_at has about one
    distinct value per event, so it expects one group per event and never
    aggregates in parallel. A one-row function's column is estimated from that
    one row, which leaves the other keys to decide and gives the parallel plan:
    partial aggregates in each worker, combined in the leader.

    `bounded=False` leaves out the condition on occurred_at, for a caller that
    knows every event falls between `first` and `last`: it would cost two
    comparisons per event, and SQLite would read a range covering the whole
    table through an index instead of reading the table in order.

    A read of one day groups by the other four keys and selects the day as a
    constant: with neither the day expression nor the LATERAL join per event,
    an incremental rollup's read of a new day costs about what the bare
    GROUP BY of its events costs.
    """
    ops = connection.ops
    where, params, joins = ["1 = 1"], [], ""
    if bounded:
        start, end = day_bounds(first, last)
        where = ["e.occurred_at >= %s", "e.occurred_at < %s"]
        params = [ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)]
    if max_event_id is not None:
        where.append("e.id <= %s")
        params.append(max_event_id)
    if subtree is not None:
        joins = " JOIN accounts_tenant t ON t.id = e.tenant_id"
        where.append(subtree[0])
        params.extend(subtree[1])
    if meter_ids is not None:
        where.append(f"e.meter_id IN ({placeholders(meter_ids)})")
        params.extend(meter_ids)
    if days is not None:
        where.append(f"{event_day_sql()} IN ({placeholders(days)})")
        params.extend(ops.adapt_datefield_value(d) for d in days)
    events = "metering_usageevent e"
    if first == last:
        # Every event read is of this day: the day is a constant, not a key worked
        # out for each event (on SQLite date() parses each event's timestamp).
        keys = "e.tenant_id, e.meter_id, e.dimension, e.source"
        selected = f"e.tenant_id, e.meter_id, {day_parameter_sql()} AS day, e.dimension, e.source"
        return EventRead(
            events, joins, " AND ".join(where), params, keys, selected,
            [ops.adapt_datefield_value(first)],
        )  # fmt: skip
    day = event_day_sql()
    if parallel and connection.vendor == "postgresql":
        events += f" CROSS JOIN LATERAL unnest(ARRAY[{day}]) AS event_day(day)"
        day = "event_day.day"
    keys = f"e.tenant_id, e.meter_id, {day}, e.dimension, e.source"
    selected = f"e.tenant_id, e.meter_id, {day} AS day, e.dimension, e.source"
    return EventRead(events, joins, " AND ".join(where), params, keys, selected, [])


def grouped_pass_sql(read: EventRead, by_aggregation: dict) -> tuple[str, list] | None:
    """One grouped pass over the events for every aggregation whose day value is a
    plain aggregate (sum, count, max): each aggregate is computed for every group
    and each meter picks its own, which reads the events once for all of them."""
    grouped = {
        name: rule.day_value
        for name, rule in AGGREGATIONS.items()
        if rule.day_value is not None and by_aggregation[name]
    }
    if not grouped:
        return None
    others = [m for name, ids in by_aggregation.items() if name not in grouped for m in ids]
    columns = {name: f"v{position}" for position, name in enumerate(grouped)}
    *picked, fallback = grouped
    cases = "".join(
        f"WHEN meter_id IN ({placeholders(by_aggregation[name])}) THEN {columns[name]} "
        for name in picked
    )
    aggregates = ", ".join(f"{grouped[name]} AS {columns[name]}" for name in grouped)
    value = f"CASE {cases}ELSE {columns[fallback]} END" if cases else columns[fallback]
    sql = (
        f"SELECT tenant_id, meter_id, day, dimension, source, {value} AS value, n "
        f"FROM (SELECT {read.selected}, {aggregates}, COUNT(*) AS n "
        f"FROM {read.events}{read.joins} WHERE {read.condition}"
        + (f" AND e.meter_id NOT IN ({placeholders(others)})" if others else "")
        + f" GROUP BY {read.keys}) grouped"
    )
    params = [m for name in picked for m in by_aggregation[name]]
    return sql, [*params, *read.selected_params, *read.params, *others]


def meters_by_aggregation(meter_ids: list[int] | None) -> dict[str, list[int]]:
    meters = Meter.objects.all()
    if meter_ids is not None:
        meters = meters.filter(pk__in=meter_ids)
    grouped = {name: [] for name in AGGREGATIONS}
    for pk, aggregation in meters.values_list("pk", "aggregation"):
        grouped[aggregation].append(pk)
    return grouped
