"""The one usage query: how much a tenant's subtree used, by any grouping.

`usage_summary` is the only code that answers "how much". It reads the tenant
billing table (DailyUsage) for what is rolled up and adds the real-time tail
from raw events: events that arrived after their day was rolled up. Summable
meters (sum, count) add the tail to the stored day; gauges (max, latest) with
tail events have those days recomputed from raw events; distinct counts
(unique_count) are counted over raw events for the whole period.

Period values follow rule 3: sum and count add the days up, max takes the
largest day, latest the last day with data, unique_count the distinct
(member tenant, value) pairs of the period.
"""

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from operator import itemgetter
from typing import NamedTuple

from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Tenant, subtrees_q
from billing.aggregation import (
    ADDITIVE,
    day_bounds,
    event_day_sql,
    member_values_sql,
    unique_value_sql,
)
from billing.models import DailyUsage, DistinctValue, RolledDay, RollupRun
from metering.models import Meter

GROUP_BYS = ("meter", "day", "child", "source", "dimension")
QUANTUM = Decimal("0.000001")
GAUGES = {Meter.Aggregation.MAX, Meter.Aggregation.LATEST}


@dataclass(frozen=True)
class UsageFilters:
    meters: tuple[str, ...] = ()
    category: str = ""
    source: str = ""
    dimension: str | None = None


@dataclass
class UsageRow:
    meter: Meter
    quantity: Decimal
    event_count: int
    key: object = None  # the group: a day, a child Tenant, a source or a dimension value


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
    summable = [m for m in meters if m.aggregation not in {Meter.Aggregation.UNIQUE_COUNT}]
    replaced = query.gauge_days_with_tail([m for m in summable if m.aggregation in GAUGES])
    read_stored(series, grouping, query, summable, skip=replaced)
    add_additive_tail(series, grouping, query, [m for m in meters if m.aggregation in ADDITIVE])
    add_recomputed_gauges(series, grouping, query, replaced)
    rows = fold_period(series, {m.pk: m for m in summable})
    rows += unique_count_rows(grouping, query, [m for m in meters if m not in summable])
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


def to_decimal(value) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, Decimal):
        return value
    # SQLite hands sums of decimal columns back as float; quantities carry 6 places.
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


class Grouping:
    """How stored rows and member tenants map onto the requested groups."""

    def __init__(self, tenant: Tenant, group_by: str):
        self.tenant = tenant
        self.group_by = group_by
        self.children = list(tenant.get_children().order_by("lft")) if group_by == "child" else []
        self._lefts = [c.lft for c in self.children]
        # The DailyUsage / UsageEvent column a group comes from, if any.
        self.row_field = {"source": "source", "dimension": "dimension"}.get(group_by)

    def key_of(self, *, day: date, column_value=None, child: int | None = None):
        """The group of a value: `child` is the member's group by child (see
        member_group), `column_value` its source or dimension."""
        if self.group_by == "day":
            return day
        if self.row_field:
            return column_value
        if self.group_by == "child":
            return child
        return None

    def member_group(self, lft: int) -> int:
        """The id of the direct child whose subtree holds a member (by lft), or of
        the tenant itself. Groups are keyed by id while summing (hashing a model
        instance costs more than the addition) and resolved by `resolve`."""
        i = bisect.bisect_right(self._lefts, lft) - 1
        if i >= 0 and self.children[i].lft <= lft <= self.children[i].rght:
            return self.children[i].pk
        return self.tenant.pk

    def resolve(self, rows: list["UsageRow"]) -> list["UsageRow"]:
        """Grouped by child: the rows' tenant ids become the tenants."""
        if self.group_by == "child":
            by_id = {self.tenant.pk: self.tenant, **{c.pk: c for c in self.children}}
            for row in rows:
                row.key = by_id[row.key]
        return rows


class TailRow(NamedTuple):
    group: int | None  # grouped by child: member_group's id; otherwise None
    member: int | None  # the member tenant, for distinct counts only
    meter_id: int
    day: date
    source: str
    dimension: str
    value: str | None
    quantity: Decimal
    n: int


# Tenant kinds nest at most this deep (partner, reseller, organization, agent), so
# a member is at most this many parent links below its tenant's direct child.
HOPS_TO_CHILD = len(Tenant.ALLOWED_PARENT_KINDS) - 2


class TailQuery:
    """The subtree, the days and the watermarks that decide what is tail."""

    def __init__(
        self,
        grouping: Grouping,
        start: date,
        end: date,
        filters: UsageFilters,
        meter_ids: list[int],
    ):
        self.grouping = grouping
        self.tenant = grouping.tenant
        self.meter_ids = meter_ids
        self.start, self.end = start, end
        self.filters = filters
        self.start_at, self.end_at = day_bounds(start, end)
        self.watermark = RollupRun.objects.watermark()
        # Days recomputed after the last complete run (a run that stopped half way).
        self.day_marks = dict(
            RolledDay.objects.filter(
                day__range=(start, end), watermark__gt=self.watermark
            ).values_list("day", "watermark")
        )

    def tail_conditions(self, meter_ids: list[int]) -> tuple[list[str], list]:
        """SQL conditions selecting this query's tail events `e`: received after the
        watermark (and after their day's own mark), in the period, of these meters,
        passing the filters. The subtree is left to the caller (it needs a join)."""
        ops = connection.ops
        where = [
            "e.id > %s",
            "e.occurred_at >= %s AND e.occurred_at < %s",
            f"e.meter_id IN ({', '.join(['%s'] * len(meter_ids))})",
        ]
        params = [
            self.watermark,
            ops.adapt_datetimefield_value(self.start_at),
            ops.adapt_datetimefield_value(self.end_at),
            *meter_ids,
        ]
        if self.filters.source:
            where.append("e.source = %s")
            params.append(self.filters.source)
        if self.filters.dimension is not None:
            where.append("e.dimension = %s")
            params.append(self.filters.dimension)
        for day, mark in self.day_marks.items():
            first, after = day_bounds(day, day)
            where.append("NOT (e.occurred_at >= %s AND e.occurred_at < %s AND e.id <= %s)")
            params += [ops.adapt_datetimefield_value(first), ops.adapt_datetimefield_value(after),
                       mark]  # fmt: skip
        return where, params

    def tail_groups(self, meter_ids: list[int], columns: list[str]) -> list[tuple]:
        """(*columns, quantity sum, event count) over the tail events of these meters,
        grouped by columns (TailRow's fields)."""
        key_of = itemgetter(*(TailRow._fields.index(c) for c in columns))
        single = len(columns) == 1
        groups: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
        for meter_id in set(meter_ids):
            for row in self.rows_by_meter.get(meter_id, ()):
                cell = groups[(key_of(row),) if single else key_of(row)]
                cell[0] += row.quantity
                cell[1] += row.n
        return [(*key, quantity, n) for key, (quantity, n) in groups.items()]

    @cached_property
    def rows_by_meter(self) -> dict[int, list["TailRow"]]:
        """The rows by meter: each use walks only its own meters' rows."""
        by_meter: dict[int, list[TailRow]] = defaultdict(list)
        for row in self.rows:
            by_meter[row.meter_id].append(row)
        return by_meter

    @cached_property
    def rows(self) -> list["TailRow"]:
        """The tail summed per group, meter, day (and source or dimension when the
        summary groups by it; and member tenant and value for distinct counts):
        read once per summary.

        Raw SQL in two steps: the tail is read from the primary key range and summed
        per member first (a materialized CTE: a planner otherwise walks the subtree's
        whole history by tenant and time to find the few new events), and only those
        sums are joined to their tenants, to keep the subtree and, grouped by child,
        to find each member's group by its parent links. Under heavy ingestion the
        tail holds thousands of events on hundreds of members; summing them into the
        summary's groups here leaves Python a few rows instead of one per member.
        """
        if not self.meter_ids:
            return []
        sql, params = self.rows_sql()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [
                TailRow(group, member, meter_id, as_date(day), source, dimension, value,
                        to_decimal(quantity), int(n))
                for group, member, meter_id, day, source, dimension, value, quantity, n
                in cursor.fetchall()
            ]  # fmt: skip

    def rows_sql(self) -> tuple[str, list]:
        """The SQL of `rows` and its parameters (its plan is tested: it must read the
        events by the primary key range past the watermark, never by time)."""
        unique = Meter.Aggregation.UNIQUE_COUNT.value
        row_field = self.grouping.row_field
        grouped = {
            "tenant_id": "e.tenant_id",
            "member": f"CASE WHEN mt.aggregation = '{unique}' THEN e.tenant_id END",
            "meter_id": "e.meter_id",
            "day": event_day_sql(),
            "source": "e.source" if row_field == "source" else None,
            "dimension": "e.dimension" if row_field == "dimension" else None,
            "value": f"CASE WHEN mt.aggregation = '{unique}' THEN {unique_value_sql()} END",
        }
        # Columns the summary does not group by are constants, outside GROUP BY.
        kept = {name: expr for name, expr in grouped.items() if expr}
        selected = ", ".join(f"{expr} AS {name}" for name, expr in kept.items())
        # The second step groups by the same keys less the member's own id.
        keys = [f"g.{name}" for name in kept if name != "tenant_id"]
        columns = [f"g.{name}" if name in kept else "''" for name in grouped if name != "tenant_id"]
        where, params = self.tail_conditions(self.meter_ids)
        group, joins, group_params = self.group_sql()
        sql = (
            f"WITH tail AS MATERIALIZED (SELECT {selected}, "
            f"SUM(e.quantity) AS quantity, COUNT(*) AS n FROM metering_usageevent e{by_id_only()} "
            "JOIN metering_meter mt ON mt.id = e.meter_id "
            f"WHERE {' AND '.join(where)} GROUP BY {', '.join(kept.values())}) "
            f"SELECT {group} AS grp, {', '.join(columns)}, SUM(g.quantity), SUM(g.n) "
            f"FROM tail g JOIN accounts_tenant t ON t.id = g.tenant_id{joins} "
            "WHERE t.tree_id = %s AND t.lft >= %s AND t.lft <= %s "
            f"GROUP BY 1, {', '.join(keys)}"
        )
        params += [*group_params, self.tenant.tree_id, self.tenant.lft, self.tenant.rght]
        return sql, params

    def group_sql(self) -> tuple[str, str, list]:
        """SQL for a member `t`'s group by child (NULL for other groupings): the
        ancestor whose parent is the tenant, or the tenant itself for its own usage.
        Returns (expression, joins, the expression's parameters)."""
        if self.grouping.group_by != "child":
            return "NULL", "", []
        me = self.tenant.pk
        chain = ["t", *(f"p{hop}" for hop in range(1, HOPS_TO_CHILD + 1))]
        joins = "".join(
            f" LEFT JOIN accounts_tenant {node} ON {node}.id = {below}.parent_id"
            for below, node in zip(chain, chain[1:], strict=False)
        )
        cases = " ".join(f"WHEN {node}.parent_id = %s THEN {node}.id" for node in chain)
        return f"CASE {cases} ELSE %s END", joins, [me] * len(chain) + [me]

    def gauge_days_with_tail(self, gauges: list[Meter]) -> dict[int, set[date]]:
        """For each gauge meter, the days whose stored value is out of date."""
        replaced: dict[int, set[date]] = defaultdict(set)
        for meter_id, day, _, _ in self.tail_groups([m.pk for m in gauges], ["meter_id", "day"]):
            replaced[meter_id].add(as_date(day))
        return replaced


def by_id_only() -> str:
    """SQLite: read the tail by the rowid range alone. With statistics its planner
    may walk the period's events by their time or meter index instead (the cost
    then grows with every stored event, not with the tail); NOT INDEXED leaves it
    only the rowid range. PostgreSQL probes the primary key's end itself."""
    return " NOT INDEXED" if connection.vendor == "sqlite" else ""


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
    counts = {m.pk for m in meters if m.aggregation == Meter.Aggregation.COUNT}
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
        if values["meter_id"] in counts:
            quantity = count
        series.add(key, values["meter_id"], day, quantity, count)


def add_recomputed_gauges(series, grouping, query, replaced) -> None:
    """Gauges whose day got new events: the day's member values from raw events."""
    for meter_id, days in replaced.items():
        sql, params = member_values_sql(
            first=min(days),
            last=max(days),
            subtree=(query.tenant.tree_id, query.tenant.lft, query.tenant.rght),
            meter_ids=[meter_id],
            days=sorted(days),
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            members = cursor.fetchall()
        lefts = dict(Tenant.objects.filter(pk__in={m[0] for m in members}).values_list("pk", "lft"))
        for tenant_id, _, day, dimension, source, value, count in members:
            if query.filters.source and source != query.filters.source:
                continue
            if query.filters.dimension is not None and dimension != query.filters.dimension:
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
                quantity=PERIOD_VALUE[meter.aggregation](days).quantize(QUANTUM),
                event_count=sum(d[2] for d in days),
                key=key,
            )
        )
    return [r for r in rows if r.event_count or r.quantity]


# How each aggregation turns a period's daily values (day-sorted) into one value.
PERIOD_VALUE = {
    Meter.Aggregation.SUM: lambda days: sum((d[1] for d in days), Decimal(0)),
    Meter.Aggregation.COUNT: lambda days: sum((d[1] for d in days), Decimal(0)),
    Meter.Aggregation.MAX: lambda days: (
        max(d[1] for d in days if d[2]) if any(d[2] for d in days) else Decimal(0)
    ),
    Meter.Aggregation.LATEST: lambda days: next((d[1] for d in reversed(days) if d[2]), Decimal(0)),
}


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
    first_month, last_month = query.start.replace(day=1), query.end.replace(day=1)
    stored = DistinctValue.objects.filter(
        subtrees_q([query.tenant], "tenant__"),
        meter_id__in=[m.pk for m in meters],
        month__range=(first_month, last_month),
    )
    if query.filters.source:
        stored = stored.filter(source=query.filters.source)
    if query.filters.dimension not in (None, ""):
        return
    grouping = query.grouping
    by_child = grouping.group_by == "child"
    columns = ("tenant_id", "tenant__lft", "meter_id", "source", "value", "month", "days")
    for tenant_id, lft, meter_id, source, value, month, days in stored.values_list(*columns):
        child = grouping.member_group(lft) if by_child else None
        month = as_date(month)
        hits = days & period_mask(month, query.start, query.end)
        if hits and not per_day:
            yield tenant_id, child, meter_id, source, value, None
            continue
        while hits:
            bit = hits & -hits
            yield tenant_id, child, meter_id, source, value, month.replace(day=bit.bit_length())
            hits ^= bit
    columns = ["member", "group", "meter_id", "source", "value", "day"]
    for row in query.tail_groups([m.pk for m in meters], columns):
        member, child, meter_id, source, value, day = row[:6]
        yield member, child, meter_id, source, value or "", as_date(day) if per_day else None


def period_mask(month: date, start: date, end: date) -> int:
    """The bits of the days of `month` that fall between start and end."""
    first = start.day if (start.year, start.month) == (month.year, month.month) else 1
    last = end.day if (end.year, end.month) == (month.year, month.month) else 31
    return ((1 << last) - 1) & ~((1 << (first - 1)) - 1)


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
