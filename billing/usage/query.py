"""The one usage query: how much a tenant's subtree used, by any grouping.

`usage_summary` is the only code that answers "how much". It reads the tenant
billing table (DailyUsage) for what is rolled up and adds the real-time tail
from raw events: events that arrived after their day was rolled up. How the
tail joins the stored days and how days fold into a period's value is each
aggregation's rule in billing.usage.aggregations: sums and counts add the tail
to the stored day and add days up; gauges (max, latest) recompute days with
tail events from raw events and take the largest or the last day; distinct
counts count the (member tenant, value) pairs of the whole period.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Tenant, subtrees_q
from billing.models import DailyUsage, DistinctValue, RollupRun
from billing.periods import day_of_bit, month_day_mask, month_of
from billing.usage.aggregations import ADDS, COUNTS_DISTINCT, RECOMPUTES_DAY, rule_of
from billing.usage.day_values import member_values_sql
from billing.usage.grouping import GROUP_BYS, Grouping, UsageFilters, UsageRow
from billing.usage.tail import TailQuery
from billing.usage.values import as_date, to_decimal
from metering.models import Meter

QUANTUM = Decimal("0.000001")


@dataclass
class UsageSummary:
    tenant: Tenant
    start: date
    end: date
    group_by: str
    rows: list[UsageRow]
    as_of: datetime
    last_rollup: RollupRun | None = None
    meters: list[Meter] = field(default_factory=list)


def usage_summary(
    tenant: Tenant,
    start: date,
    end: date,
    group_by: str = "meter",
    filters: UsageFilters | None = None,
) -> UsageSummary:
    """Usage of `tenant`'s subtree from `start` to `end` (both inclusive, UTC days)."""
    if group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    filters = filters or UsageFilters()
    as_of = timezone.now()
    meters = select_meters(filters)
    grouping = Grouping(tenant, group_by)
    query = TailQuery(grouping, start, end, filters, [m.pk for m in meters])
    series = DailySeries()
    by_tail = meters_by_tail(meters)
    by_days = by_tail[ADDS] + by_tail[RECOMPUTES_DAY]
    replaced = query.gauge_days_with_tail(by_tail[RECOMPUTES_DAY])
    read_stored(series, grouping, query, by_days, skip=replaced)
    add_additive_tail(series, grouping, query, by_tail[ADDS])
    add_recomputed_gauges(series, grouping, query, replaced)
    rows = fold_period(series, {m.pk: m for m in by_days})
    rows += unique_count_rows(grouping, query, by_tail[COUNTS_DISTINCT])
    rows = complete_children(grouping.resolve(rows), grouping, meters, filters)
    rows.sort(key=lambda r: (r.meter.category, r.meter.code, sort_key(r.key)))
    return UsageSummary(
        tenant=tenant,
        start=start,
        end=end,
        group_by=group_by,
        rows=rows,
        as_of=as_of,
        last_rollup=RollupRun.objects.last_success(),
        meters=meters,
    )


def select_meters(filters: UsageFilters) -> list[Meter]:
    meters = Meter.objects.all()
    if filters.meters:
        meters = meters.filter(code__in=filters.meters)
    if filters.category:
        meters = meters.filter(category=filters.category)
    return list(meters)


def meters_by_tail(meters: list[Meter]) -> dict[str, list[Meter]]:
    """The meters by how their tail reaches a summary (see aggregations)."""
    grouped = {ADDS: [], RECOMPUTES_DAY: [], COUNTS_DISTINCT: []}
    for meter in meters:
        grouped[rule_of(meter).tail].append(meter)
    return grouped


def sort_key(key):
    if isinstance(key, Tenant):
        return (1, key.name)
    return (0, "" if key is None else str(key))


class DailySeries:
    """Daily values per (group key, meter id, day): [quantity, event count]."""

    def __init__(self):
        self.values: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])

    def add(self, key, meter_id: int, day: date, quantity, count: int, sign: int = 1):
        cell = self.values[(key, meter_id, day)]
        cell[0] += sign * to_decimal(quantity)
        cell[1] += sign * count


def read_stored(series, grouping, query, meters, skip) -> None:
    """Add the stored daily rows of the tenant (and, by child, of its children)."""
    if not meters:
        return
    tenant = grouping.tenant
    rows = DailyUsage.objects.filter(
        day__range=(query.start, query.end), meter_id__in=[m.pk for m in meters]
    )
    if query.filters.source:
        rows = rows.filter(source=query.filters.source)
    if query.filters.dimension is not None:
        rows = rows.filter(dimension=query.filters.dimension)
    if query.filters.exclude_dimensions:
        rows = rows.exclude(dimension__in=query.filters.exclude_dimensions)
    columns = ["tenant_id", "meter_id", "day"]
    if grouping.row_field:
        columns.append(grouping.row_field)
    tenant_ids = [tenant.pk, *(c.pk for c in grouping.children)]
    totals = (
        rows.filter(tenant_id__in=tenant_ids)
        .values(*columns)
        .annotate(q=Sum("quantity"), n=Sum("event_count"))
        .order_by()
    )
    for row in totals:
        day = as_date(row["day"])
        if day in skip.get(row["meter_id"], ()):
            continue
        owner = row["tenant_id"]
        if grouping.group_by == "child":
            # The tenant's own usage is its total less its children's.
            series.add(owner, row["meter_id"], day, row["q"], row["n"])
            if owner != tenant.pk:
                series.add(tenant.pk, row["meter_id"], day, row["q"], row["n"], sign=-1)
            continue
        key = grouping.key_of(day=day, column_value=row.get(grouping.row_field))
        series.add(key, row["meter_id"], day, row["q"], row["n"])


def add_additive_tail(series, grouping, query, meters) -> None:
    """Summable meters: the stored day plus the events that came after it."""
    rules = {m.pk: rule_of(m) for m in meters}
    columns = ["meter_id", "day"]
    if grouping.row_field:
        columns.append(grouping.row_field)
    if grouping.group_by == "child":
        columns.append("group")
    for row in query.tail_groups([m.pk for m in meters], columns):
        values = dict(zip(columns, row, strict=False))
        quantity, count = row[-2], row[-1]
        day = as_date(values["day"])
        key = grouping.key_of(
            day=day, column_value=values.get(grouping.row_field), child=values.get("group")
        )
        tail_value = rules[values["meter_id"]].tail_value
        if tail_value is not None:  # distinct counts read only the event counts here
            quantity = tail_value(quantity, count)
        series.add(key, values["meter_id"], day, quantity, count)


def add_recomputed_gauges(series, grouping, query, replaced) -> None:
    """Gauges whose day got new events: the day's member values from raw events."""
    for meter_id, days in replaced.items():
        sql, params = member_values_sql(
            first=min(days),
            last=max(days),
            subtree=query.tenant.subtree_sql("t"),
            meter_ids=[meter_id],
            days=sorted(days),
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            members = cursor.fetchall()
        lefts = dict(Tenant.objects.filter(pk__in={m[0] for m in members}).values_list("pk", "lft"))
        for tenant_id, _, day, dimension, source, value, count in members:
            if not query.filters.admits(source, dimension):
                continue
            column = {"source": source, "dimension": dimension}.get(grouping.row_field)
            child = grouping.member_group(lefts[tenant_id])
            key = grouping.key_of(day=as_date(day), column_value=column, child=child)
            series.add(key, meter_id, as_date(day), value, count)


def fold_period(series: DailySeries, meters: dict[int, Meter]) -> list[UsageRow]:
    """Daily values to one value per (group, meter) by each meter's aggregation."""
    days_of: dict[tuple, list[tuple[date, Decimal, int]]] = defaultdict(list)
    for (key, meter_id, day), (quantity, count) in series.values.items():
        days_of[(key, meter_id)].append((day, quantity, count))
    rows = []
    for (key, meter_id), days in days_of.items():
        meter = meters[meter_id]
        days.sort(key=lambda d: d[0])
        rows.append(
            UsageRow(
                meter=meter,
                quantity=rule_of(meter).fold(days).quantize(QUANTUM),
                event_count=sum(d[2] for d in days),
                key=key,
            )
        )
    return [r for r in rows if r.event_count or r.quantity]


def unique_count_rows(grouping, query, meters) -> list[UsageRow]:
    """Distinct (member tenant, value) pairs per group over the period.

    Pairs come from the rolled-up day masks (DistinctValue) plus the tail's events;
    event counts from the billing table plus the tail, like any count.
    """
    if not meters:
        return []
    counts = DailySeries()
    read_stored(counts, grouping, query, meters, skip={})
    add_additive_tail(counts, grouping, query, meters)
    events: dict[tuple, int] = defaultdict(int)
    for (key, meter_id, _), (_, count) in counts.values.items():
        events[(key, meter_id)] += count
    pairs: dict[tuple, set] = defaultdict(set)
    per_day = grouping.group_by == "day"
    for tenant_id, child, meter_id, source, value, day in seen_pairs(query, meters, per_day):
        key = grouping.key_of(
            day=day, column_value={"source": source, "dimension": ""}.get(grouping.row_field),
            child=child,
        )  # fmt: skip
        pairs[(key, meter_id)].add((tenant_id, value))
    by_id = {m.pk: m for m in meters}
    return [
        UsageRow(
            meter=by_id[meter_id],
            quantity=Decimal(len(values)).quantize(QUANTUM),
            event_count=events.get((key, meter_id), 0),
            key=key,
        )
        for (key, meter_id), values in pairs.items()
    ]


def seen_pairs(query, meters, per_day: bool):
    """(tenant id, its group by child, meter id, source, value, day) for each pair seen
    in the period: from the stored month masks, then from the tail's events. With
    `per_day`, once per day seen; otherwise at least once (day None). The group by
    child is None when the summary groups otherwise."""
    first_month, last_month = month_of(query.start), month_of(query.end)
    stored = DistinctValue.objects.filter(
        subtrees_q([query.tenant], "tenant__"),
        meter_id__in=[m.pk for m in meters],
        month__range=(first_month, last_month),
    )
    if query.filters.source:
        stored = stored.filter(source=query.filters.source)
    # Distinct counts have no dimension (their meters have no grouping attribute):
    # a dimension filter other than "none" leaves nothing.
    if query.filters.dimension not in (None, "") or "" in query.filters.exclude_dimensions:
        return
    grouping = query.grouping
    by_child = grouping.group_by == "child"
    columns = ("tenant_id", "tenant__lft", "meter_id", "source", "value", "month", "days")
    for tenant_id, lft, meter_id, source, value, month, days in stored.values_list(*columns):
        child = grouping.member_group(lft) if by_child else None
        month = as_date(month)
        hits = days & month_day_mask(month, query.start, query.end)
        if hits and not per_day:
            yield tenant_id, child, meter_id, source, value, None
            continue
        while hits:
            bit = hits & -hits
            yield tenant_id, child, meter_id, source, value, day_of_bit(month, bit)
            hits ^= bit
    columns = ["member", "group", "meter_id", "source", "value", "day"]
    for row in query.tail_groups([m.pk for m in meters], columns):
        member, child, meter_id, source, value, day = row[:6]
        yield member, child, meter_id, source, value or "", as_date(day) if per_day else None


def complete_children(rows, grouping, meters, filters) -> list[UsageRow]:
    """By child, every direct child appears, with zeros where it used nothing."""
    if grouping.group_by != "child":
        return rows
    filtered = bool(filters.meters or filters.category)
    shown = (
        meters if filtered or not rows else [m for m in meters if any(r.meter == m for r in rows)]
    )
    present = {(r.key.pk, r.meter.pk) for r in rows}
    for child in grouping.children:
        for meter in shown:
            if (child.pk, meter.pk) not in present:
                rows.append(UsageRow(meter=meter, quantity=Decimal(0).quantize(QUANTUM),
                                     event_count=0, key=child))  # fmt: skip
    return rows
