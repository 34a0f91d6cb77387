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
from django.db.models import Max, Min

from accounts.models import Tenant
from accounts.services import tree_write_lock
from billing.models import DailyUsage, RolledDay, RollupRun
from billing.periods import day_bit, day_bounds, month_of
from billing.usage.aggregations import COUNTS_DISTINCT, aggregations_where
from billing.usage.day_values import member_values_sql
from billing.usage.runs import (
    COMMIT_GRACE,
    PhaseClock,
    current_watermark,
    days_with_events,
    recorded_run,
)
from billing.usage.sql import placeholders, unique_value_sql
from billing.usage.values import as_date
from metering.models import Meter, UsageEvent

# The billing table's key, day first.
TOTALS_KEY = "day, tenant_id, meter_id, dimension, source"
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
        previous = RollupRun.objects.watermark()
        watermark = max(current_watermark(grace), previous)
        todo = sorted(set(days)) if days is not None else days_with_events(previous, watermark)
    if progress is not None:
        progress.reset(total=len(todo))
    with (
        recorded_run(trigger, watermark, todo, started) as run,
        RollupBatch(todo, watermark, phases) as batch,
    ):
        for days in batch.transactions():
            result = batch.rollup_days(days)
            run.days_recomputed += len(days)
            run.rows_written += result.rows_written
            run.events_read += result.events_read
            if progress is not None:
                progress.update(len(days))
    return run


class RollupBatch:
    """Work tables for one run, built before the first day is written:

    - member values of every day to do, read in one pass over the events;
    - each tenant's ancestors (equality joins, not lft/rght ranges);
    - the subtree totals of every tenant for every day to do, summed from the
      member values in one set-based statement for all days.

    Each transaction (a day and its neighbours, see `transactions`) then only makes
    its days' rows equal to the staged totals. The totals depend on the tree, so a
    transaction checks, under the tree lock, that the tree is the one they were
    summed over, and sums them again (from the member values, not the events) if
    a tenant moved meanwhile.

    They are temporary tables of this database connection, dropped at the end.
    """

    MEMBERS = "rollup_member_values"
    ANCESTORS = "rollup_ancestors"
    TOTALS = "rollup_totals"

    def __init__(self, days: list[date], watermark: int, phases: PhaseClock | None = None):
        self.days = days
        self.watermark = watermark
        self.tree_fingerprint = None
        self.events_by_day: dict[date, int] = {}
        self.rows_by_day: dict[date, int] = {}
        self.phase = phases or PhaseClock()

    # PostgreSQL: room to hash the member groups in memory, and no JIT compilation,
    # whose start-up cost outweighs the work of each per-day statement.
    SESSION_SETTINGS = {"work_mem": "256MB", "jit": "off"}

    def __enter__(self):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for name, value in self.SESSION_SETTINGS.items():
                    cursor.execute(f"SET {name} = '{value}'")
        if self.days:
            with self.phase("stage member values"):
                self.stage_member_values()
            with self.phase("stage totals"), tree_write_lock():
                self.ensure_totals()
        return self

    def __exit__(self, *exc):
        with self.phase("drop work tables"), connection.cursor() as cursor:
            for table in (self.MEMBERS, self.ANCESTORS, self.TOTALS):
                cursor.execute(f"DROP TABLE IF EXISTS {table}")
            if connection.vendor == "postgresql":
                for name in self.SESSION_SETTINGS:
                    cursor.execute(f"RESET {name}")
        return False

    def stage_member_values(self) -> None:
        """One read of the events of every day to do (id ≤ watermark)."""
        first, last = self.days[0], self.days[-1]
        sql, params = member_values_sql(
            first=first,
            last=last,
            max_event_id=self.watermark,
            days=None if len(self.days) == (last - first).days + 1 else self.days,
            parallel=True,
            bounded=not covers_every_event(first, last),
        )
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.MEMBERS}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.MEMBERS} AS {sql}", params)
            cursor.execute(f"SELECT day, SUM(n) FROM {self.MEMBERS} GROUP BY day")
            self.events_by_day = {as_date(day): int(n) for day, n in cursor.fetchall()}

    def stage_ancestors(self) -> None:
        """(member, ancestor) for every tenant and each of its ancestors, itself included."""
        parents = dict(Tenant.objects.values_list("pk", "parent_id"))
        pairs = []
        for member in parents:
            node = member
            while node is not None:
                pairs.append((member, node))
                node = parents[node]
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.ANCESTORS}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.ANCESTORS} (member_id bigint, ancestor_id bigint)"
            )
            cursor.executemany(f"INSERT INTO {self.ANCESTORS} VALUES (%s, %s)", pairs)

    def stage_totals(self) -> None:
        """Subtree totals of every tenant for every day to do, in one statement.

        Raw SQL because this is a set-based step the ORM cannot express: member
        values (see billing.usage.day_values) are joined to every ancestor of their
        tenant and summed per ancestor. Runs the same on SQLite and PostgreSQL.
        The table declares the billing table's column types: SQLite compares values
        of differing column affinities without using the index.
        """
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.TOTALS}")
            cursor.execute(
                f"CREATE TEMPORARY TABLE {self.TOTALS} (tenant_id bigint, meter_id bigint, "
                "day date, dimension varchar(256), source varchar(8), quantity decimal, "
                "event_count bigint)"
            )
            cursor.execute(
                f"INSERT INTO {self.TOTALS} "
                "SELECT a.ancestor_id, m.meter_id, m.day, m.dimension, m.source, SUM(m.value), "
                f"SUM(m.n) FROM {self.MEMBERS} m JOIN {self.ANCESTORS} a "
                "ON a.member_id = m.tenant_id "
                "GROUP BY a.ancestor_id, m.meter_id, m.day, m.dimension, m.source "
                # Stored by day: a transaction's days are then neighbouring pages.
                "ORDER BY m.day"
            )
            cursor.execute(f"CREATE INDEX {self.TOTALS}_key ON {self.TOTALS} ({TOTALS_KEY})")
            cursor.execute(f"ANALYZE {self.TOTALS}")
            cursor.execute(f"SELECT day, COUNT(*) FROM {self.TOTALS} GROUP BY day")
            self.rows_by_day = {as_date(day): n for day, n in cursor.fetchall()}

    def ensure_totals(self) -> None:
        """Sum the totals over the current tree, again if the tree moved since
        (called under the tree lock)."""
        fingerprint = tree_fingerprint()
        if fingerprint != self.tree_fingerprint:
            self.stage_ancestors()
            self.stage_totals()
            self.tree_fingerprint = fingerprint

    # A transaction recomputes consecutive days to do until it holds this many rows:
    # fewer statements and commits than one per day, while each transaction (which
    # holds the tree lock, and on SQLite the database's write lock) stays short.
    ROWS_PER_TRANSACTION = 20_000

    def transactions(self) -> list[list[date]]:
        """The days to do, in groups that are each recomputed in one transaction."""
        groups, rows = [], 0
        for day in self.days:
            if not groups or rows + self.rows_by_day.get(day, 0) > self.ROWS_PER_TRANSACTION:
                groups.append([])
                rows = 0
            groups[-1].append(day)
            rows += self.rows_by_day.get(day, 0)
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
                self.ensure_totals()
            newer = set(
                RolledDay.objects.filter(day__in=days, watermark__gt=self.watermark).values_list(
                    "day", flat=True
                )
            )
            written = [day for day in days if day not in newer]
            with phase("write days"):
                self.write_days(written)
            with phase("distinct values"):
                for day in written:
                    record_distinct_values(day, self.watermark)
            with phase("mark days"):
                RolledDay.objects.bulk_create(
                    [RolledDay(day=day, watermark=self.watermark) for day in written],
                    update_conflicts=True,
                    unique_fields=["day"],
                    update_fields=["watermark", "rolled_at"],
                )
        return DayResult(
            rows_written=sum(self.rows_by_day.get(day, 0) for day in written),
            events_read=sum(self.events_by_day.get(day, 0) for day in written),
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
            f"t.event_count FROM {self.TOTALS} t WHERE t.day IN ({day_list})"
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE day IN ({day_list}) LIMIT 1", params)
            if cursor.fetchone() is None:
                cursor.execute(insert, params)
                return
            cursor.execute(
                f"DELETE FROM {table} WHERE day IN ({day_list}) AND NOT EXISTS "
                f"(SELECT 1 FROM {self.TOTALS} t WHERE t.day IN ({day_list}) AND {same_key})",
                params + params,
            )
            cursor.execute(
                f"UPDATE {table} SET quantity = t.quantity, event_count = t.event_count "
                f"FROM {self.TOTALS} t WHERE {table}.day IN ({day_list}) "
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


def covers_every_event(first: date, last: date) -> bool:
    """Whether every stored event occurred between `first` and `last` (UTC days).

    Two index lookups (separate queries: SQLite optimizes a lone MIN or MAX only).
    """
    events = UsageEvent.objects.order_by()
    earliest = events.aggregate(at=Min("occurred_at"))["at"]
    latest = events.aggregate(at=Max("occurred_at"))["at"]
    start, end = day_bounds(first, last)
    return earliest is None or (start <= earliest and latest < end)


def record_distinct_values(day: date, watermark: int) -> None:
    """Set the day's bit on every (member, meter, source, value) seen that day.

    Raw SQL: bitwise updates and an INSERT … SELECT … ON CONFLICT DO UPDATE that
    ORs the bit into existing rows; the same on SQLite and PostgreSQL.
    """
    distinct = Meter.objects.filter(aggregation__in=aggregations_where(COUNTS_DISTINCT))
    uniques = list(distinct.values_list("pk", flat=True))
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
        if uniques:
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


def tree_fingerprint() -> tuple:
    """Changes whenever a tenant is added or moved."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*), COALESCE(SUM(parent_id), 0), COALESCE(SUM(lft * 7 + rght), 0), "
            "COALESCE(MAX(id), 0) FROM accounts_tenant"
        )
        return tuple(cursor.fetchone())
