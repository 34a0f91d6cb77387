"""Per-member daily values of usage events, in SQL: the first step of rule 3.

"Aggregate over time per tenant first, then over tenants": for every member
tenant, meter, UTC day, dimension and source this computes the day's value by
the meter's aggregation. Subtree totals are then sums of member values, which
is what the rollup stores and what the real-time tail adds up.
"""

from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from metering.models import Meter

# The SQL expression of each summable aggregation over one group of events.
GROUP_AGGREGATES = {
    Meter.Aggregation.SUM: "SUM(e.quantity)",
    Meter.Aggregation.COUNT: "COUNT(*)",
    Meter.Aggregation.MAX: "MAX(e.quantity)",
    Meter.Aggregation.UNIQUE_COUNT: "COUNT(DISTINCT {unique_value})",
}
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
) -> tuple[str, list]:
    """SQL selecting (tenant_id, meter_id, day, dimension, source, value, n).

    One row per member tenant, meter, day, dimension and source between `first`
    and `last`, optionally only for events with id ≤ `max_event_id`, inside one
    subtree (tree_id, lft, rght), for some meters, or on some days.
    """
    start, end = day_bounds(first, last)
    ops = connection.ops
    where = ["e.occurred_at >= %s", "e.occurred_at < %s"]
    params: list = [ops.adapt_datetimefield_value(start), ops.adapt_datetimefield_value(end)]
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
    day = event_day_sql()
    cases = " ".join(
        f"WHEN '{agg}' THEN {expression.format(unique_value=unique_value_sql())}"
        for agg, expression in GROUP_AGGREGATES.items()
    )
    grouped = (
        f"SELECT e.tenant_id, e.meter_id, {day} AS day, e.dimension, e.source, "
        f"CASE mt.aggregation {cases} END AS value, COUNT(*) AS n "
        f"FROM metering_usageevent e JOIN metering_meter mt ON mt.id = e.meter_id{joins} "
        f"WHERE {condition} AND mt.aggregation <> 'latest' "
        f"GROUP BY e.tenant_id, e.meter_id, {day}, e.dimension, e.source, mt.aggregation"
    )
    # `latest`: the value of the day's last event (ties broken by arrival order).
    partition = f"e.tenant_id, e.meter_id, {day}, e.dimension, e.source"
    latest = (
        "SELECT tenant_id, meter_id, day, dimension, source, quantity AS value, n FROM ("
        f"SELECT e.tenant_id, e.meter_id, {day} AS day, e.dimension, e.source, e.quantity, "
        f"ROW_NUMBER() OVER (PARTITION BY {partition} "
        "ORDER BY e.occurred_at DESC, e.id DESC) AS rn, "
        f"COUNT(*) OVER (PARTITION BY {partition}) AS n "
        f"FROM metering_usageevent e JOIN metering_meter mt ON mt.id = e.meter_id{joins} "
        f"WHERE {condition} AND mt.aggregation = 'latest') latest_events WHERE rn = 1"
    )
    return f"{grouped} UNION ALL {latest}", params + params
