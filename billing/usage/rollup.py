"""The rollup: recompute whole days of the tenant billing table from usage events.

Each day is recomputed from the day's events with an id up to the run's
watermark, in one transaction (with a few neighbouring days, see
RollupBatch.transactions) that also records the day's watermark, so running it
twice (or again after a crash) gives the same rows. A run recomputes the days
that received events since the last complete run: late events make their day
"dirty" simply by arriving.
"""

import time as clock
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection

from accounts.services import tree_write_lock
from billing.models import DailyUsage, RolledDay, RollupRun
from billing.periods import day_bit, day_bounds, month_of
from billing.usage import clickhouse_reads
from billing.usage.aggregations import COUNTS_DISTINCT, aggregations_where
from billing.usage.day_values import member_values_sql
from billing.usage.runs import (
    COMMIT_GRACE,
    PhaseClock,
    current_watermark,
    new_events_by_day,
    recorded_run,
)
from billing.usage.sql import placeholders, unique_value_sql
from billing.usage.staging import (
    TOTALS_KEY,
    WorkTables,
    ancestry_sql,
    covers_every_event,
    totals_sql,
)
from metering.models import Meter
from metering.stores import event_store, uses_clickhouse

BILLING_TABLE = DailyUsage._meta.db_table


@dataclass
class DayResult:
    rows_written: int
    events_read: int


def run_rollup(
    *,
    days: list[date] | None = None,
    trigger: str = "manual",
    grace: timedelta = COMMIT_GRACE,
    progress=None,
    phases: PhaseClock | None = None,
) -> RollupRun:
    """Recompute the dirty days (or exactly `days`) and advance the watermark.

    `phases`, if given, collects the seconds spent in each phase.
    """
    started = clock.monotonic()
    phases = phases or PhaseClock()
    with phases("plan"):
        event_store().tidy()
        previous = RollupRun.objects.watermark()
        watermark = max(current_watermark(grace), previous)
        new_events = new_events_by_day(previous, watermark) if days is None else {}
        todo = sorted(set(days)) if days is not None else sorted(new_events)
        mark = watermark if days is None else chosen_days_mark(todo, previous, watermark)
    if progress is not None:
        progress.reset(total=len(todo))
    with recorded_run(trigger, mark, todo, started) as run:
        result = None
        if todo and days is None and sum(new_events.values()) <= NEW_DAYS_EVENTS:
            result = roll_up_new_days(todo, watermark, phases)
        if result is not None:
            run.days_recomputed = len(todo)
            run.rows_written, run.events_read = result.rows_written, result.events_read
            if progress is not None:
                progress.update(len(todo))
            return run
        with RollupBatch(todo, watermark, phases) as batch:
            for days in batch.transactions():
                result = batch.rollup_days(days)
                run.days_recomputed += len(days)
                run.rows_written += result.rows_written
                run.events_read += result.events_read
                if progress is not None:
                    progress.update(len(days))
    return run


def chosen_days_mark(days: list[date], previous: int, watermark: int) -> int:
    """The watermark a run of chosen days may record: its own only if every event
    received since the last complete run fell on one of those days.

    Otherwise the previous one: the days it recomputed carry their own mark
    (RolledDay), and the other days' new events stay in the tail until a run
    recomputes them. Recording its own would tell every later summary and run
    that those events are in the billing table, and they would count nowhere.
    """
    if previous >= watermark:
        return watermark
    if days:
        first, last = days[0], days[-1]
        # Two index lookups answer the common case (`--all`, a long `--since`).
        if len(days) == (last - first).days + 1 and covers_every_event(first, last):
            return watermark
    return watermark if set(new_events_by_day(previous, watermark)) <= set(days) else previous


# A run whose new events number at most this, all on days without rows yet, reads
# them inside its one write transaction (see roll_up_new_days). On SQLite that
# transaction holds the database's write lock, so its read must stay short.
NEW_DAYS_EVENTS = 50_000


def roll_up_new_days(days: list[date], watermark: int, phase: PhaseClock) -> DayResult | None:
    """Write days that have no rows yet (what a day of ingestion leaves) in one
    transaction: one statement reads their events, sums them per ancestor and
    inserts the totals.

    No work tables: for a day of a few thousand rows, creating, indexing and
    analyzing them cost more than the day itself. The read runs under the tree
    lock, so the totals are those of the current tree. Returns None, having
    written nothing, if a day has rows or a watermark by then (another run
    wrote it): the caller then recomputes the days with work tables.
    """
    first, last = days[0], days[-1]
    members, params = member_values_sql(
        first=first,
        last=last,
        max_event_id=watermark,
        days=None if len(days) == (last - first).days + 1 else days,
    )
    day_list = ", ".join(["%s"] * len(days))
    day_params = [connection.ops.adapt_datefield_value(day) for day in days]
    with phase("day transactions"), tree_write_lock():
        if (
            DailyUsage.objects.filter(day__in=days).exists()
            or RolledDay.objects.filter(day__in=days).exists()
        ):
            return None
        with phase("write days"), connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                for name, value in WorkTables.SESSION_SETTINGS.items():
                    cursor.execute(f"SET LOCAL {name} = '{value}'")
            # The WITH after INSERT: SQLite reports no row count for a statement
            # that starts with WITH.
            cursor.execute(
                f"INSERT INTO {BILLING_TABLE} "
                "(tenant_id, meter_id, day, dimension, source, quantity, event_count) "
                f"{ancestry_sql()}{totals_sql(f'({members})', 'ancestry')}",
                params,
            )
            rows = cursor.rowcount
            # Every event counts once in the rows of its tree's root.
            cursor.execute(
                f"SELECT COALESCE(SUM(d.event_count), 0) FROM {BILLING_TABLE} d "
                "JOIN accounts_tenant t ON t.id = d.tenant_id "
                f"WHERE t.parent_id IS NULL AND d.day IN ({day_list})",
                day_params,
            )
            events = int(cursor.fetchone()[0])
        mark_days(days, watermark, phase)
    return DayResult(rows_written=rows, events_read=events)


class RollupBatch:
    """One run's days, recomputed in transactions of a few neighbouring days from
    the run's work tables (see WorkTables)."""

    def __init__(self, days: list[date], watermark: int, phases: PhaseClock | None = None):
        self.days = days
        self.watermark = watermark
        self.phase = phases or PhaseClock()
        self.work = WorkTables(days, watermark, self.phase)

    def __enter__(self):
        self.work.__enter__()
        return self

    def __exit__(self, *exc):
        return self.work.__exit__(*exc)

    # A transaction recomputes consecutive days to do until it holds this many rows:
    # fewer statements and commits than one per day, while each transaction (which
    # holds the tree lock, and on SQLite the database's write lock) stays short.
    ROWS_PER_TRANSACTION = 20_000

    def transactions(self) -> list[list[date]]:
        """The days to do, in groups that are each recomputed in one transaction."""
        groups, rows = [], 0
        for day in self.days:
            if not groups or rows + self.work.rows_by_day.get(day, 0) > self.ROWS_PER_TRANSACTION:
                groups.append([])
                rows = 0
            groups[-1].append(day)
            rows += self.work.rows_by_day.get(day, 0)
        return groups

    def rollup_days(self, days: list[date]) -> DayResult:
        """Make the days' rows equal to their recomputed subtree totals, in one transaction.

        A day that a run with a higher watermark already wrote is left alone: two
        runs may overlap (a compaction and the schedule, or a manual run), and
        the one that read more events must win whatever the order they commit in.
        """
        phase = self.phase
        with phase("day transactions"), tree_write_lock():
            with phase("check tree"):
                self.work.ensure_totals()
            newer = set(
                RolledDay.objects.filter(day__in=days, watermark__gt=self.watermark).values_list(
                    "day", flat=True
                )
            )
            written = [day for day in days if day not in newer]
            with phase("write days"):
                self.write_days(written)
            mark_days(written, self.watermark, phase)
        return DayResult(
            rows_written=sum(self.work.rows_by_day.get(day, 0) for day in written),
            events_read=sum(self.work.events_by_day.get(day, 0) for day in written),
        )

    def write_days(self, days: list[date]) -> None:
        """Make the days' rows equal to their staged totals.

        Days without rows yet (a first rollup) get a plain insert. Otherwise the
        rows that no longer have a total are deleted, those whose total changed are
        updated and the missing ones inserted: the same result as replacing the
        days, but a recomputation that changes little (a late event, a rerun) writes
        little instead of a dead version and new index entries for every row. The
        tree lock keeps the other writer of the billing table (moves) out
        meanwhile. Raw SQL: set-based statements against the staged totals, the
        same on SQLite and PostgreSQL.
        """
        if not days:
            return
        table = BILLING_TABLE
        same_key = " AND ".join(f"t.{c} = {table}.{c}" for c in TOTALS_KEY.split(", "))
        day_list = ", ".join(["%s"] * len(days))
        params = [connection.ops.adapt_datefield_value(day) for day in days]
        insert = (
            f"INSERT INTO {table} "
            "(tenant_id, meter_id, day, dimension, source, quantity, event_count) "
            "SELECT t.tenant_id, t.meter_id, t.day, t.dimension, t.source, t.quantity, "
            f"t.event_count FROM {self.work.TOTALS} t WHERE t.day IN ({day_list})"
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE day IN ({day_list}) LIMIT 1", params)
            if cursor.fetchone() is None:
                cursor.execute(insert, params)
                return
            cursor.execute(
                f"DELETE FROM {table} WHERE day IN ({day_list}) AND NOT EXISTS "
                f"(SELECT 1 FROM {self.work.TOTALS} t WHERE t.day IN ({day_list}) AND {same_key})",
                params + params,
            )
            cursor.execute(
                f"UPDATE {table} SET quantity = t.quantity, event_count = t.event_count "
                f"FROM {self.work.TOTALS} t WHERE {table}.day IN ({day_list}) "
                f"AND t.day IN ({day_list}) AND {same_key} "
                f"AND ({table}.quantity <> t.quantity OR {table}.event_count <> t.event_count)",
                params + params,
            )
            # The rows left are exactly the totals' keys that exist: insert the others.
            # Not with an anti-join: its plan follows the table's statistics, and a
            # table that was nearly empty at its last ANALYZE turns it into a nested
            # loop over a sequential scan.
            cursor.execute(
                f"{insert} ON CONFLICT (tenant_id, day, meter_id, dimension, source) DO NOTHING",
                params,
            )


def mark_days(days: list[date], watermark: int, phase: PhaseClock) -> None:
    """Record the days' distinct values and the watermark they were computed with
    (inside the transaction that wrote their rows)."""
    with phase("distinct values"):
        uniques = list(
            Meter.objects.filter(aggregation__in=aggregations_where(COUNTS_DISTINCT)).values_list(
                "pk", flat=True
            )
        )
        # The days' rows, just written, say which days saw a distinct-count meter:
        # the others have no value to record (in ClickHouse, a FINAL read of the
        # whole day spared).
        seen = (
            set(
                DailyUsage.objects.filter(day__in=days, meter_id__in=uniques)
                .values_list("day", flat=True)
                .distinct()
            )
            if uniques
            else set()
        )
        for day in days:
            record_distinct_values(day, watermark, uniques if day in seen else [])
    with phase("mark days"):
        RolledDay.objects.bulk_create(
            [RolledDay(day=day, watermark=watermark) for day in days],
            update_conflicts=True,
            unique_fields=["day"],
            update_fields=["watermark", "rolled_at"],
        )


def record_distinct_values(day: date, watermark: int, uniques: list[int]) -> None:
    """Set the day's bit on every (member, meter, source, value) seen that day
    (`uniques`: the distinct-count meters the day has events of; none: the bit is
    only cleared).

    Raw SQL: bitwise updates and an INSERT … SELECT … ON CONFLICT DO UPDATE that
    ORs the bit into existing rows; the same on SQLite and PostgreSQL.
    """
    value = f"COALESCE({unique_value_sql()}, '')"
    month = connection.ops.adapt_datefield_value(month_of(day))
    bit = day_bit(day)
    start, end = day_bounds(day, day)
    ops = connection.ops
    with connection.cursor() as cursor:
        # Recomputing the day: first forget what it had.
        cursor.execute(
            "UPDATE billing_distinctvalue SET days = days & ~%s "
            "WHERE month = %s AND (days & %s) <> 0",
            [bit, month, bit],
        )
        if uniques and uses_clickhouse():
            tuples = clickhouse_reads.distinct_tuples(day, watermark, uniques)
            insert_distinct_tuples(cursor, tuples, month, bit)
        elif uniques:
            cursor.execute(
                "INSERT INTO billing_distinctvalue "
                "(tenant_id, meter_id, month, source, value, days) "
                f"SELECT e.tenant_id, e.meter_id, %s, e.source, {value}, %s "
                "FROM metering_usageevent e JOIN metering_meter mt ON mt.id = e.meter_id "
                f"WHERE e.meter_id IN ({placeholders(uniques)}) "
                "AND e.occurred_at >= %s AND e.occurred_at < %s AND e.id <= %s "
                f"GROUP BY e.tenant_id, e.meter_id, e.source, {value} "
                "ON CONFLICT (meter_id, month, tenant_id, source, value) DO UPDATE SET "
                "days = billing_distinctvalue.days | excluded.days",
                [month, bit, *uniques, ops.adapt_datetimefield_value(start),
                 ops.adapt_datetimefield_value(end), watermark],
            )  # fmt: skip
        cursor.execute("DELETE FROM billing_distinctvalue WHERE month = %s AND days = 0", [month])


def insert_distinct_tuples(cursor, tuples: list[tuple], month, bit: int) -> None:
    """(tenant, meter, source, value) tuples read from another store: the day's bit
    ORed into their rows, as the statement over the event table does. On
    PostgreSQL in one statement over four arrays (see clickhouse_reads.insert_rows
    for what thousands of placeholders cost)."""
    if connection.vendor == "postgresql":
        if tuples:
            tenants, meters, sources, values = (list(c) for c in zip(*tuples, strict=True))
            cursor.execute(
                "INSERT INTO billing_distinctvalue (tenant_id, meter_id, month, source, value, "
                "days) SELECT t.tenant_id, t.meter_id, %s, t.source, t.value, %s "
                "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::text[]) "
                "AS t (tenant_id, meter_id, source, value) "
                "ON CONFLICT (meter_id, month, tenant_id, source, value) DO UPDATE SET "
                "days = billing_distinctvalue.days | excluded.days",
                [month, bit, tenants, meters, sources, values],
            )
        return
    for start in range(0, len(tuples), 500):
        chunk = tuples[start : start + 500]
        cursor.execute(
            "INSERT INTO billing_distinctvalue (tenant_id, meter_id, month, source, value, days) "
            f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s)'] * len(chunk))} "
            "ON CONFLICT (meter_id, month, tenant_id, source, value) DO UPDATE SET "
            "days = billing_distinctvalue.days | excluded.days",
            [v for tenant, meter, source, value in chunk
             for v in (tenant, meter, month, source, value, bit)],
        )  # fmt: skip
