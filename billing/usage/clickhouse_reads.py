"""The billing reads over raw events when they live in ClickHouse.

The relational store answers these reads with SQL over the event table (see
day_values, tail, runs, compaction, rollup.record_distinct_values); with
USAGE_EVENT_STORE=clickhouse each of those functions hands over to its
counterpart here:

- member day values (the rollup's read, and gauges recomputed for a summary);
- a day's distinct (member, meter, source, value) tuples;
- the real-time tail of a summary;
- events per day between two watermarks, and the span of stored days;
- a day's tail per member (compaction).

Each reads ClickHouse with FINAL (a stray duplicate never counts) and without
the batches an aborted ingestion left (`excluded_batches`). Reads whose result
the rest of the rollup joins in SQL are staged into a temporary table of this
database connection, so everything after the read is the same SQL in both
stores: the read itself is the only part that differs.
"""

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count

from django.db import connection

from accounts.models import Tenant
from billing.periods import day_bounds
from billing.usage.values import to_decimal
from metering.clickhouse import client, events_table
from metering.models import Meter
from metering.stores.clickhouse import excluded_batches

# Table reads merge duplicates within a month only: the sort key holds the day.
FINAL_SETTINGS = {"do_not_merge_across_partitions_select_final": 1}

MEMBER_VALUES = "ch_member_values"
DAY_TAIL = "ch_day_tail"


class Conditions:
    """WHERE conditions over the event table with ClickHouse's typed parameters."""

    def __init__(self):
        self.where: list[str] = ["NOT has({excluded:Array(UInt64)}, batch)"]
        self.params: dict = {"excluded": excluded_batches()}
        self._names = count()

    def add(self, template: str, **values) -> "Conditions":
        """`template` names its parameters {name:Type}; each gets a unique name."""
        for name, value in values.items():
            unique = f"{name}_{next(self._names)}"
            template = template.replace("{" + name + ":", "{" + unique + ":")
            self.params[unique] = value
        self.where.append(template)
        return self

    def period(self, first: date, last: date) -> "Conditions":
        start, end = day_bounds(first, last)
        return self.add(
            "occurred_at >= {start:DateTime64(6, 'UTC')} "
            "AND occurred_at < {end:DateTime64(6, 'UTC')}",
            start=naive(start),
            end=naive(end),
        )

    def sql(self) -> str:
        return " AND ".join(self.where)


def naive(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None)


def unique_value_sql(meters: list[Meter]) -> str:
    """The event's value of its meter's unique_key, as text, for distinct-count
    meters (NULL for others and where the attribute is missing): a string as it
    is, anything else as its JSON text, as PostgreSQL's ->> gives it."""
    cases = []
    for meter in meters:
        key = meter.unique_key.replace("\\", "\\\\").replace("'", "\\'")
        cases.append(
            f"meter_id = {int(meter.pk)}, if(JSONHas(attributes, '{key}'), "
            f"if(JSONType(attributes, '{key}') = 'String', JSONExtractString(attributes, '{key}'), "
            f"JSONExtractRaw(attributes, '{key}')), NULL)"
        )
    if not cases:
        return "CAST(NULL AS Nullable(String))"
    return f"multiIf({', '.join(cases)}, NULL)"


def distinct_meters(meter_ids=None) -> list[Meter]:
    meters = Meter.objects.filter(aggregation=Meter.Aggregation.UNIQUE_COUNT)
    if meter_ids is not None:
        meters = meters.filter(pk__in=meter_ids)
    return list(meters.only("pk", "unique_key"))


def subtree_ids(subtree: tuple[str, list]) -> list[int]:
    """The ids of the tenants `t` matching a relational subtree condition."""
    sql, params = subtree
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t.id FROM accounts_tenant t WHERE {sql}", params)
        return [pk for (pk,) in cursor.fetchall()]


def read(sql: str, conditions: Conditions) -> list[tuple]:
    return client.query(sql, conditions.params, settings=FINAL_SETTINGS).result_rows


# -- member day values ---------------------------------------------------------------


def member_values_sql(
    *, first, last, max_event_id=None, subtree=None, meter_ids=None, days=None, **_
) -> tuple[str, list]:
    """Member day values (tenant_id, meter_id, day, dimension, source, value, n)
    read from ClickHouse in one grouped pass (every aggregation computed for every
    group, each meter picking its own), staged into a temporary table; returns
    the SELECT of that table (day_values.member_values_sql's contract)."""
    conditions = Conditions().period(first, last)
    if max_event_id is not None:
        conditions.add("batch <= {watermark:UInt64}", watermark=max_event_id)
    if subtree is not None:
        conditions.add("has({tenants:Array(UInt64)}, tenant_id)", tenants=subtree_ids(subtree))
    if meter_ids is not None:
        conditions.add("has({meters:Array(UInt64)}, meter_id)", meters=list(meter_ids))
    if days is not None:
        conditions.add("has({days:Array(Date)}, toDate(occurred_at))", days=list(days))
    aggregation = dict(Meter.objects.values_list("pk", "aggregation"))
    # Each aggregate only over its own meters' events (-If): computed for every
    # event, the latest value and the distinct count doubled the read's cost.
    of = meters_of(aggregation)
    rows = read(
        "SELECT tenant_id, meter_id, toDate(occurred_at) AS day, dimension, source, "
        f"sum(quantity), count(), maxIf(quantity, {of(Meter.Aggregation.MAX)}), "
        "argMaxIf(quantity, (occurred_at, batch, position), "
        f"{of(Meter.Aggregation.LATEST)}), "
        f"uniqExactIf({unique_value_sql(distinct_meters(meter_ids))}, "
        f"{of(Meter.Aggregation.UNIQUE_COUNT)}) "
        f"FROM {events_table()} FINAL WHERE {conditions.sql()} "
        "GROUP BY tenant_id, meter_id, day, dimension, source",
        conditions,
    )
    values = []
    for tenant_id, meter_id, day, dimension, source, total, n, top, last_value, distinct in rows:
        value = {
            Meter.Aggregation.SUM: total,
            Meter.Aggregation.COUNT: Decimal(n),
            Meter.Aggregation.MAX: top,
            Meter.Aggregation.LATEST: last_value,
            Meter.Aggregation.UNIQUE_COUNT: Decimal(distinct),
        }[aggregation[meter_id]]
        values.append((tenant_id, meter_id, day, dimension, source, value, n))
    stage(
        MEMBER_VALUES,
        "tenant_id bigint, meter_id bigint, day date, dimension varchar(256), "
        "source varchar(8), value decimal, n bigint",
        values,
    )
    return (
        f"SELECT tenant_id, meter_id, day, dimension, source, value, n FROM {MEMBER_VALUES}",
        [],
    )


def meters_of(aggregation: dict[int, str]):
    """aggregation name -> a condition on `meter_id` selecting that aggregation's
    meters (of the meter id -> aggregation map given)."""

    def condition(name: str) -> str:
        ids = sorted(int(pk) for pk, kind in aggregation.items() if kind == name)
        return f"meter_id IN ({', '.join(map(str, ids))})" if ids else "0"

    return condition


def stage(table: str, columns: str, rows: list[tuple]) -> None:
    """Rows into a temporary table of this connection, replacing what it held."""
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"CREATE TEMPORARY TABLE {table} ({columns})")
    insert_rows(table, rows)


def insert_rows(target: str, rows: list[tuple]) -> None:
    """Rows read from ClickHouse into `target` (a table of this database, or a
    table and its column list): copied on PostgreSQL, a few hundred a statement
    elsewhere.

    Dates and decimals go as the relational store's own SQL would write them:
    the rows then compare and sum like the event table's."""
    ops = connection.ops
    adapted = [
        tuple(
            ops.adapt_datefield_value(v) if isinstance(v, date) and not isinstance(v, datetime)
            else str(v) if isinstance(v, Decimal) else v
            for v in row
        )
        for row in rows
    ]  # fmt: skip
    if not adapted:
        return
    if connection.vendor == "postgresql":
        # A multi-row INSERT's thousands of placeholders are bound in Python, one
        # statement at a time: 100,000 rows took 12 s that way, 0.5 s copied.
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {target} FROM STDIN") as copy:
            for row in adapted:
                copy.write_row(row)
        return
    marks = "(" + ", ".join(["%s"] * len(adapted[0])) + ")"
    with connection.cursor() as cursor:
        for start in range(0, len(adapted), 500):
            chunk = adapted[start : start + 500]
            cursor.execute(
                f"INSERT INTO {target} VALUES {', '.join([marks] * len(chunk))}",
                [v for row in chunk for v in row],
            )


# -- distinct values of a day ---------------------------------------------------------


def distinct_tuples(day: date, watermark: int, uniques: list[int]) -> list[tuple]:
    """(tenant_id, meter_id, source, value) seen on the day in batches ≤ watermark."""
    conditions = Conditions().period(day, day)
    conditions.add("batch <= {watermark:UInt64}", watermark=watermark)
    conditions.add("has({meters:Array(UInt64)}, meter_id)", meters=uniques)
    value = unique_value_sql(distinct_meters(uniques))
    return read(
        f"SELECT tenant_id, meter_id, source, ifNull({value}, '') "
        f"AS value FROM {events_table()} FINAL WHERE {conditions.sql()} "
        "GROUP BY tenant_id, meter_id, source, value",
        conditions,
    )


# -- events between watermarks ---------------------------------------------------------


def events_by_day(after: int, up_to: int) -> dict[date, int]:
    conditions = Conditions().add(
        "batch > {after:UInt64} AND batch <= {up_to:UInt64}", after=after, up_to=up_to
    )
    rows = read(
        f"SELECT toDate(occurred_at) AS day, count() FROM {events_table()} FINAL "
        f"WHERE {conditions.sql()} GROUP BY day",
        conditions,
    )
    return {day: n for day, n in rows}


def has_events_of(after: int, up_to: int, meter_ids: list[int]) -> bool:
    conditions = Conditions().add(
        "batch > {after:UInt64} AND batch <= {up_to:UInt64} "
        "AND has({meters:Array(UInt64)}, meter_id)",
        after=after,
        up_to=up_to,
        meters=meter_ids,
    )
    sql = f"SELECT 1 FROM {events_table()} WHERE {conditions.sql()} LIMIT 1"
    return bool(read(sql, conditions))


def event_span() -> tuple[datetime | None, datetime | None]:
    """The earliest and latest occurred_at stored (None, None when empty)."""
    conditions = Conditions()
    ((n, earliest, latest),) = read(
        f"SELECT count(), min(occurred_at), max(occurred_at) FROM {events_table()} "
        f"WHERE {conditions.sql()}",
        conditions,
    )
    if not n:
        return None, None
    return earliest.replace(tzinfo=UTC), latest.replace(tzinfo=UTC)


# -- the tail of one day, per member (compaction) --------------------------------------


def day_tail_sql(day: date, after: int, up_to: int, value_of: dict[int, str]) -> tuple[str, list]:
    """The day's events with after < batch ≤ up_to summed per member, meter, dimension
    and source (each event's contribution by its meter: `value_of` maps summable
    meter ids to "quantity" or "1"), staged; returns the SELECT of the staged rows
    (tenant_id, meter_id, dimension, source, quantity, n)."""
    conditions = Conditions().period(day, day)
    conditions.add("batch > {after:UInt64} AND batch <= {up_to:UInt64}", after=after, up_to=up_to)
    conditions.params["counted"] = [m for m, value in value_of.items() if value == "1"]
    rows = read(
        "SELECT tenant_id, meter_id, dimension, source, "
        "if(has({counted:Array(UInt64)}, meter_id), toDecimal128(count(), 6), sum(quantity)), "
        f"count() FROM {events_table()} FINAL WHERE {conditions.sql()} "
        "GROUP BY tenant_id, meter_id, dimension, source",
        conditions,
    )
    stage(
        DAY_TAIL,
        "tenant_id bigint, meter_id bigint, dimension varchar(256), source varchar(8), "
        "quantity decimal, n bigint",
        rows,
    )
    return f"SELECT tenant_id, meter_id, dimension, source, quantity, n FROM {DAY_TAIL}", []


# -- the real-time tail of a summary ----------------------------------------------------


def tail_rows(query) -> list[tuple]:
    """TailQuery.rows from ClickHouse: the tail summed per member, meter, day (and
    source or dimension when the summary groups by it, and value for distinct
    counts), then per the summary's groups here; tuples in TailRow's field order."""
    conditions = Conditions().period(query.start, query.end)
    conditions.add("batch > {watermark:UInt64}", watermark=query.watermark)
    conditions.add("has({meters:Array(UInt64)}, meter_id)", meters=list(query.meter_ids))
    filters = query.filters
    if filters.source:
        conditions.add("source = {source:String}", source=filters.source)
    if filters.exclude_dimensions:
        conditions.add(
            "NOT has({excluded_dims:Array(String)}, dimension)",
            excluded_dims=list(filters.exclude_dimensions),
        )
    if filters.dimension is not None:
        conditions.add("dimension = {dimension:String}", dimension=filters.dimension)
    for day, mark in query.day_marks.items():
        conditions.add(
            "NOT (toDate(occurred_at) = {day:Date} AND batch <= {mark:UInt64})", day=day, mark=mark
        )
    members = tail_members(query.tenant, conditions)
    if not members:
        return []
    conditions.add("has({tenants:Array(UInt64)}, tenant_id)", tenants=list(members))
    row_field = query.grouping.row_field
    source = "source" if row_field == "source" else "''"
    dimension = "dimension" if row_field == "dimension" else "''"
    distinct = {m.pk for m in distinct_meters(query.meter_ids)}
    rows = read(
        f"SELECT tenant_id, meter_id, toDate(occurred_at) AS day, {source} AS src, "
        f"{dimension} AS dim, {unique_value_sql(distinct_meters(query.meter_ids))} AS value, "
        f"sum(quantity), count() FROM {events_table()} FINAL WHERE {conditions.sql()} "
        "GROUP BY tenant_id, meter_id, day, src, dim, value",
        conditions,
    )
    by_child = query.grouping.group_by == "child"
    sums: dict[tuple, list] = defaultdict(lambda: [Decimal(0), 0])
    for tenant_id, meter_id, day, src, dim, value, quantity, n in rows:
        group = query.grouping.member_group(members[tenant_id]) if by_child else None
        member = tenant_id if meter_id in distinct else None
        cell = sums[(group, member, meter_id, day, src, dim, value)]
        cell[0] += to_decimal(quantity)
        cell[1] += n
    return [(*key, quantity, n) for key, (quantity, n) in sums.items()]


def tail_members(tenant: Tenant, conditions: Conditions) -> dict[int, int]:
    """The members of `tenant`'s subtree (id: lft) that have events matching
    `conditions` (the tail's).

    The tail's tenants are read first: a partner's subtree holds thousands of
    tenants, and binding all their ids into the tail's read cost several times
    the read itself (23 ms against 3 for 10,511 ids, the batch index finding no
    tail), while the tail, a few batches past the watermark, has few tenants.
    No FINAL: a duplicate does not change which tenants have events."""
    present = {
        tenant_id
        for (tenant_id,) in read(
            f"SELECT DISTINCT tenant_id FROM {events_table()} WHERE {conditions.sql()}", conditions
        )
    }
    if not present:
        return {}
    subtree = Tenant.objects.filter(
        tree_id=tenant.tree_id, lft__gte=tenant.lft, lft__lte=tenant.rght
    ).values_list("pk", "lft")
    return {pk: lft for pk, lft in subtree if pk in present}
