"""Per-member daily values of usage events, in SQL: the first step of rule 3.

"Aggregate over time per tenant first, then over tenants": for every member
tenant, meter, UTC day, dimension and source this computes the day's value by
the meter's aggregation. Subtree totals are then sums of member values, which
is what the rollup stores and what the real-time tail adds up.
"""

from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from metering.models import Meter

# Aggregations computed together in one grouped pass over the events.
SUMMABLE = (Meter.Aggregation.SUM, Meter.Aggregation.COUNT, Meter.Aggregation.MAX)
# Only these can be topped up by adding newer events to a stored day.
ADDITIVE = {Meter.Aggregation.SUM, Meter.Aggregation.COUNT}


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00 UTC, the day after last 00:00 UTC)."""
    start = datetime.combine(first, time.min, UTC)
    return start, datetime.combine(last + timedelta(days=1), time.min, UTC)


def unique_value_sql() -> str:
    """The event's value of its meter's unique_key attribute, as text."""
    if connection.vendor == "postgresql":
        return "(e.attributes ->> mt.unique_key)"
    return "json_extract(e.attributes, '$.\"' || mt.unique_key || '\"')"


def event_day_sql() -> str:
    if connection.vendor == "postgresql":
        return "((e.occurred_at AT TIME ZONE 'UTC')::date)"
    return "date(e.occurred_at)"


def member_values_sql(
    *,
    first: date,
    last: date,
    max_event_id: int | None = None,
    subtree: tuple[int, int, int] | None = None,
    meter_ids: list[int] | None = None,
    days: list[date] | None = None,
    parallel: bool = False,
    bounded: bool = True,
) -> tuple[str, list]:
    """SQL selecting (tenant_id, meter_id, day, dimension, source, value, n).

    One row per member tenant, meter, day, dimension and source between `first`
    and `last`, optionally only for events with id ≤ `max_event_id`, inside one
    subtree (tree_id, lft, rght), for some meters, or on some days.

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
    """
    start, end = day_bounds(first, last)
    ops = connection.ops
    where, params = ["1 = 1"], []
    if bounded:
        where = ["e.occurred_at >= %s", "e.occurred_at < %s"]
        params = [ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)]
    joins = ""
    if max_event_id is not None:
        where.append("e.id <= %s")
        params.append(max_event_id)
    if subtree is not None:
        joins = " JOIN accounts_tenant t ON t.id = e.tenant_id"
        where.append("t.tree_id = %s AND t.lft >= %s AND t.lft <= %s")
        params.extend(subtree)
    if meter_ids is not None:
        where.append(f"e.meter_id IN ({', '.join(['%s'] * len(meter_ids))})")
        params.extend(meter_ids)
    if days is not None:
        where.append(f"{event_day_sql()} IN ({', '.join(['%s'] * len(days))})")
        params.extend(ops.adapt_datefield_value(d) for d in days)
    condition = " AND ".join(where)
    events = "metering_usageevent e"
    day = event_day_sql()
    if parallel and connection.vendor == "postgresql":
        events += f" CROSS JOIN LATERAL unnest(ARRAY[{day}]) AS event_day(day)"
        day = "event_day.day"
    by_aggregation = meters_by_aggregation(meter_ids)
    source = f"FROM {events}{joins} WHERE {condition}"
    keys = f"e.tenant_id, e.meter_id, {day}, e.dimension, e.source"
    parts, all_params = [], []
    special = (
        by_aggregation[Meter.Aggregation.UNIQUE_COUNT] + by_aggregation[Meter.Aggregation.LATEST]
    )
    summable = [m for agg in SUMMABLE for m in by_aggregation[agg]]
    if summable:
        # Sum, count and max need no per-meter expression: compute all three, pick one.
        counts = by_aggregation[Meter.Aggregation.COUNT] or [0]
        maxes = by_aggregation[Meter.Aggregation.MAX] or [0]
        parts.append(
            f"SELECT tenant_id, meter_id, day, dimension, source, CASE "
            f"WHEN meter_id IN ({placeholders(counts)}) THEN n "
            f"WHEN meter_id IN ({placeholders(maxes)}) THEN top ELSE total END AS value, n "
            f"FROM (SELECT {keys.replace(day, day + ' AS day')}, SUM(e.quantity) AS total, "
            f"MAX(e.quantity) AS top, COUNT(*) AS n {source}"
            + (f" AND e.meter_id NOT IN ({placeholders(special)})" if special else "")
            + f" GROUP BY {keys}) summed"
        )
        all_params += [*counts, *maxes, *params, *special]
    uniques = by_aggregation[Meter.Aggregation.UNIQUE_COUNT]
    if uniques:
        parts.append(
            f"SELECT {keys.replace(day, day + ' AS day')}, "
            f"COUNT(DISTINCT {unique_value_sql()}) AS value, COUNT(*) AS n "
            f"FROM {events} JOIN metering_meter mt ON mt.id = e.meter_id{joins} "
            f"WHERE {condition} AND e.meter_id IN ({placeholders(uniques)}) GROUP BY {keys}"
        )
        all_params += [*params, *uniques]
    latest = by_aggregation[Meter.Aggregation.LATEST]
    if latest:
        # The value of the day's last event (ties broken by arrival order).
        parts.append(
            "SELECT tenant_id, meter_id, day, dimension, source, quantity AS value, n FROM ("
            f"SELECT {keys.replace(day, day + ' AS day')}, e.quantity, "
            f"ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY e.occurred_at DESC, e.id DESC) "
            f"AS rn, COUNT(*) OVER (PARTITION BY {keys}) AS n "
            f"{source} AND e.meter_id IN ({placeholders(latest)})) latest_events WHERE rn = 1"
        )
        all_params += [*params, *latest]
    if not parts:
        return (
            "SELECT e.tenant_id, e.meter_id, e.occurred_at AS day, e.dimension, e.source, "
            "e.quantity AS value, 1 AS n FROM metering_usageevent e WHERE 1 = 0",
            [],
        )
    return " UNION ALL ".join(parts), all_params


def placeholders(values) -> str:
    return ", ".join(["%s"] * len(values))


def meters_by_aggregation(meter_ids: list[int] | None) -> dict[str, list[int]]:
    meters = Meter.objects.all()
    if meter_ids is not None:
        meters = meters.filter(pk__in=meter_ids)
    grouped = {agg: [] for agg in Meter.Aggregation.values}
    for pk, aggregation in meters.values_list("pk", "aggregation"):
        grouped[aggregation].append(pk)
    return grouped
