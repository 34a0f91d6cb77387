"""The real-time tail: usage events received after their day was rolled up.

A summary reads the billing table for what is rolled up and this query for the
rest: events past the run's watermark (and past their day's own mark, for days
a stopped run already recomputed), summed per group once per summary.
"""

from collections import defaultdict
from datetime import date
from decimal import Decimal
from functools import cached_property
from operator import itemgetter
from typing import NamedTuple

from django.db import connection

from accounts.models import Tenant
from billing.models import RolledDay, RollupRun
from billing.periods import day_bounds
from billing.usage import clickhouse_reads
from billing.usage.aggregations import COUNTS_DISTINCT, aggregations_where
from billing.usage.grouping import Grouping, UsageFilters
from billing.usage.sql import event_day_sql, placeholders, unique_value_sql
from billing.usage.values import as_date, to_decimal
from metering.models import Meter, UsageEvent
from metering.stores import uses_clickhouse

EVENTS = UsageEvent._meta.db_table
METERS = Meter._meta.db_table
TENANTS = Tenant._meta.db_table


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
            f"e.meter_id IN ({placeholders(meter_ids)})",
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
        if self.filters.exclude_dimensions:
            excluded = self.filters.exclude_dimensions
            where.append(f"e.dimension NOT IN ({placeholders(excluded)})")
            params.extend(excluded)
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
        if uses_clickhouse():
            return [TailRow(*row) for row in clickhouse_reads.tail_rows(self)]
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
        distinct = ", ".join(f"'{name}'" for name in aggregations_where(COUNTS_DISTINCT))
        row_field = self.grouping.row_field
        grouped = {
            "tenant_id": "e.tenant_id",
            "member": f"CASE WHEN mt.aggregation IN ({distinct}) THEN e.tenant_id END",
            "meter_id": "e.meter_id",
            "day": event_day_sql(),
            "source": "e.source" if row_field == "source" else None,
            "dimension": "e.dimension" if row_field == "dimension" else None,
            "value": f"CASE WHEN mt.aggregation IN ({distinct}) THEN {unique_value_sql()} END",
        }
        # Columns the summary does not group by are constants, outside GROUP BY.
        kept = {name: expr for name, expr in grouped.items() if expr}
        selected = ", ".join(f"{expr} AS {name}" for name, expr in kept.items())
        # The second step groups by the same keys less the member's own id.
        keys = [f"g.{name}" for name in kept if name != "tenant_id"]
        columns = [f"g.{name}" if name in kept else "''" for name in grouped if name != "tenant_id"]
        where, params = self.tail_conditions(self.meter_ids)
        group, joins, group_params = self.group_sql()
        subtree, subtree_params = self.tenant.subtree_sql("t")
        sql = (
            f"WITH tail AS MATERIALIZED (SELECT {selected}, "
            f"SUM(e.quantity) AS quantity, COUNT(*) AS n FROM {EVENTS} e{by_id_only()} "
            f"JOIN {METERS} mt ON mt.id = e.meter_id "
            f"WHERE {' AND '.join(where)} GROUP BY {', '.join(kept.values())}) "
            f"SELECT {group} AS grp, {', '.join(columns)}, SUM(g.quantity), SUM(g.n) "
            f"FROM tail g JOIN {TENANTS} t ON t.id = g.tenant_id{joins} "
            f"WHERE {subtree} GROUP BY 1, {', '.join(keys)}"
        )
        params += [*group_params, *subtree_params]
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
            f" LEFT JOIN {TENANTS} {node} ON {node}.id = {below}.parent_id"
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
