"""The rollup: recompute whole days of the tenant billing table from usage events.

Each day is recomputed from the day's events with an id up to the run's
watermark, in one transaction (with a few neighbouring days, see
RollupBatch.transactions) that also records the day's watermark, so running it
twice (or again after a crash) gives the same rows. A run recomputes the days
that received events since the last complete run: late events make their day
"dirty" simply by arriving.
"""

import os
import socket
import time as clock
import traceback
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import Max, Min
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import tree_write_lock
from billing.aggregation import ADDITIVE, day_bounds, member_values_sql, unique_value_sql
from billing.models import DailyUsage, RolledDay, RollupRun
from metering.ingestion import committed_ceiling
from metering.models import Meter, UsageEvent

# The billing table's key, day first.
TOTALS_KEY = "day, tenant_id, meter_id, dimension, source"

# Where the exact ceiling cannot be had in time (see committed_ceiling), events
# younger than this are left to the next run: an insert transaction that took its
# id earlier may not have committed yet.
COMMIT_GRACE = timedelta(seconds=10)


@dataclass
class DayResult:
    rows_written: int
    events_read: int


class PhaseClock:
    """Seconds spent in each phase of a run, for profiling (bench/rollup.py prints them)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, phase: str):
        started = clock.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += clock.perf_counter() - started


def current_watermark(grace: timedelta = COMMIT_GRACE) -> int:
    """The highest event id that every earlier-received event has committed below.

    `grace` zero: the highest id, for callers that know no insert is in flight.
    """
    if grace:
        ceiling = committed_ceiling()
        if ceiling is not None:
            return ceiling
    top = UsageEvent.objects.aggregate(top=Max("id"))["top"] or 0
    if grace:
        cutoff = timezone.now() - grace
        young = UsageEvent.objects.filter(received_at__gt=cutoff).aggregate(low=Min("id"))["low"]
        if young is not None:
            top = min(top, young - 1)
    return top


def days_with_events(min_id: int, max_id: int) -> list[date]:
    """UTC days of the events with min_id < id ≤ max_id."""
    days = (
        UsageEvent.objects.filter(id__gt=min_id, id__lte=max_id)
        .annotate(day=TruncDate("occurred_at", tzinfo=UTC))
        .values_list("day", flat=True)
        .distinct()
    )
    return sorted(set(days))


def run_rollup(
    *,
    days: list[date] | None = None,
    trigger: str = "manual",
    grace: timedelta = COMMIT_GRACE,
    progress=None,
    fail_after_days: int | None = None,
    phases: PhaseClock | None = None,
) -> RollupRun:
    """Recompute the dirty days (or exactly `days`) and advance the watermark.

    `fail_after_days` simulates a crash after that many days (tests only);
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
            crash = None
            if fail_after_days is not None:
                left = fail_after_days - run.days_recomputed
                crash = days[left] if left < len(days) else None
            result = batch.rollup_days(days, crash_before=crash)
            run.days_recomputed += len(days)
            run.rows_written += result.rows_written
            run.events_read += result.events_read
            if progress is not None:
                progress.update(len(days))
    return run


@contextmanager
def recorded_run(trigger: str, watermark: int, days: list[date], started: float):
    """A RollupRun for the work inside: success when it ends, failed (with the
    traceback) when it raises. Only a successful run moves the watermark."""
    mark_abandoned_runs()
    run = RollupRun.objects.create(
        started_at=timezone.now(),
        trigger=trigger,
        host=socket.gethostname(),
        pid=os.getpid(),
        watermark=watermark,
        window_start=days[0] if days else None,
        window_end=days[-1] if days else None,
    )
    try:
        yield run
    except Exception:
        run.status = RollupRun.Status.FAILED
        run.error = traceback.format_exc(limit=5)
        finish(run, started)
        raise
    run.status = RollupRun.Status.SUCCESS
    finish(run, started)


def mark_abandoned_runs() -> int:
    """Runs still "running" whose process is gone become abandoned (their days were
    redone by whatever ran since: a run only counts once it succeeds). A run on
    this machine is checked by its process; one elsewhere once it has run longer
    than a task may (Q_CLUSTER's timeout, twice over)."""
    here = socket.gethostname()
    cutoff = timezone.now() - timedelta(seconds=2 * settings.Q_CLUSTER["timeout"])
    dead = [
        run.pk
        for run in RollupRun.objects.filter(status=RollupRun.Status.RUNNING).only(
            "pk", "host", "pid", "started_at"
        )
        if (run.host == here and run.pid and not process_alive(run.pid)) or run.started_at < cutoff
    ]
    if not dead:
        return 0
    return RollupRun.objects.filter(pk__in=dead, status=RollupRun.Status.RUNNING).update(
        status=RollupRun.Status.ABANDONED,
        finished_at=timezone.now(),
        error="Its process ended without finishing the run; later runs redid its days.",
    )


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, killed but not yet
    reaped by its parent, counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in {"Z", "X"}


def run_compaction(*, trigger: str = "compaction") -> RollupRun:
    """Bring the billing table up to the current watermark by adding the tail to it.

    When every event received since the last run belongs to a summable meter
    (sum, count) and falls on a day already rolled up, each such day's stored
    rows plus the sums of its new events (per ancestor) are exactly the rows a
    recomputation gives: this reads the tail only, not the whole day, so it can
    run every few seconds under heavy ingestion. Otherwise (a gauge or distinct
    count event, whose day value is not a sum; a day never rolled up) it is the
    ordinary rollup of those days.
    """
    previous = RollupRun.objects.watermark()
    watermark = max(current_watermark(), previous)
    days = days_with_events(previous, watermark)
    rolled = RolledDay.objects.filter(day__in=days).count()
    if not days or rolled < len(days) or tail_has_other_than_summable(previous, watermark):
        return run_rollup(trigger=trigger)
    with recorded_run(trigger, watermark, days, clock.monotonic()) as run, tree_write_lock():
        # Read again under the lock: a run may have written these days meanwhile.
        marks = dict(RolledDay.objects.filter(day__in=days).values_list("day", "watermark"))
        for day in days:
            # A day holds no event between its own mark and `previous` above it:
            # a run that moved the watermark to `previous` had rolled it up.
            after = max(marks[day], previous)
            if after < watermark:
                run.rows_written += add_tail_to_day(day, after, watermark)
                run.days_recomputed += 1
        RolledDay.objects.filter(day__in=days, watermark__lt=watermark).update(
            watermark=watermark, rolled_at=timezone.now()
        )
    return run


def tail_has_other_than_summable(after_id: int, up_to_id: int) -> bool:
    """Whether an event with after_id < id ≤ up_to_id is of a meter whose day value
    is not a sum of events (max, latest, unique_count)."""
    others = Meter.objects.exclude(aggregation__in=ADDITIVE).values_list("pk", flat=True)
    return UsageEvent.objects.filter(
        id__gt=after_id, id__lte=up_to_id, meter_id__in=list(others)
    ).exists()


def add_tail_to_day(day: date, after_id: int, up_to_id: int) -> int:
    """Add the day's events with after_id < id ≤ up_to_id to the stored subtree
    totals of their tenant and every ancestor. Returns the rows touched.

    Raw SQL: one INSERT … SELECT … ON CONFLICT DO UPDATE that adds, the same on
    SQLite and PostgreSQL. The tail is summed per member tenant first, then each
    sum goes to the member and its ancestors, found by walking parent links (a
    recursive CTE over the few members in the tail: a join on lft/rght ranges
    scanned the tree once per member). A count meter's day value is its number
    of events.
    """
    counts = list(
        Meter.objects.filter(aggregation=Meter.Aggregation.COUNT).values_list("pk", flat=True)
    )
    is_count = f"e.meter_id IN ({', '.join(['%s'] * len(counts))})" if counts else "1 = 0"
    start, end = day_bounds(day, day)
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE tail AS (SELECT e.tenant_id, e.meter_id, e.dimension, e.source, "
            f"SUM(CASE WHEN {is_count} THEN 1 ELSE e.quantity END) AS quantity, "
            "COUNT(*) AS n FROM metering_usageevent e "
            "WHERE e.id > %s AND e.id <= %s AND e.occurred_at >= %s AND e.occurred_at < %s "
            "GROUP BY e.tenant_id, e.meter_id, e.dimension, e.source), "
            "chain (member_id, ancestor_id) AS (SELECT DISTINCT tenant_id, tenant_id FROM tail "
            "UNION ALL SELECT c.member_id, t.parent_id FROM chain c "
            "JOIN accounts_tenant t ON t.id = c.ancestor_id WHERE t.parent_id IS NOT NULL) "
            "INSERT INTO billing_dailyusage "
            "(tenant_id, meter_id, day, dimension, source, quantity, event_count) "
            "SELECT c.ancestor_id, s.meter_id, %s, s.dimension, s.source, SUM(s.quantity), "
            "SUM(s.n) FROM tail s JOIN chain c ON c.member_id = s.tenant_id WHERE 1 = 1 "
            "GROUP BY c.ancestor_id, s.meter_id, s.dimension, s.source "
            "ON CONFLICT (tenant_id, day, meter_id, dimension, source) DO UPDATE SET "
            "quantity = billing_dailyusage.quantity + excluded.quantity, "
            "event_count = billing_dailyusage.event_count + excluded.event_count",
            [*counts, after_id, up_to_id, ops.adapt_datetimefield_value(start),
             ops.adapt_datetimefield_value(end), ops.adapt_datefield_value(day)],
        )  # fmt: skip
        return max(cursor.rowcount, 0)


def finish(run: RollupRun, started: float) -> None:
    run.finished_at = timezone.now()
    run.duration_ms = int((clock.monotonic() - started) * 1000)
    run.save()


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
        values (see billing.aggregation) are joined to every ancestor of their
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

    def rollup_days(self, days: list[date], crash_before: date | None = None) -> DayResult:
        """Make the days' rows equal to their recomputed subtree totals, in one transaction.

        A day that a run with a higher watermark already wrote is left alone: two
        runs may overlap (a compaction and the schedule, or a manual run), and
        the one that read more events must win whatever the order they commit in.
        `crash_before` raises inside the transaction (tests simulate a crash with it).
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
            before_crash = days if crash_before is None else days[: days.index(crash_before)]
            with phase("write days"):
                self.write_days([day for day in before_crash if day not in newer])
            if crash_before is not None:
                raise RuntimeError(f"simulated crash before {crash_before}")
            written = [day for day in days if day not in newer]
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
        table = "billing_dailyusage"
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


def as_date(value) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value


def record_distinct_values(day: date, watermark: int) -> None:
    """Set the day's bit on every (member, meter, source, value) seen that day.

    Raw SQL: bitwise updates and an INSERT … SELECT … ON CONFLICT DO UPDATE that
    ORs the bit into existing rows; the same on SQLite and PostgreSQL.
    """
    unique_meters = Meter.objects.filter(aggregation=Meter.Aggregation.UNIQUE_COUNT)
    uniques = list(unique_meters.values_list("pk", flat=True))
    value = f"COALESCE({unique_value_sql()}, '')"
    month = connection.ops.adapt_datefield_value(day.replace(day=1))
    bit = 1 << (day.day - 1)
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
                f"WHERE e.meter_id IN ({', '.join(['%s'] * len(uniques))}) "
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


def all_event_days() -> list[date]:
    return days_with_events(0, UsageEvent.objects.aggregate(top=Max("id"))["top"] or 0)


def shift_history(tenant, old_ancestor_ids: list[int], new_ancestor_ids: list[int]) -> None:
    """After a move, take the tenant's subtree totals off its old ancestors' rows
    and add them to its new ancestors' rows.

    Every subtree total is a sum over member tenants (rule 3), so moving a
    subtree changes each ancestor's rows by exactly the moved tenant's own rows:
    the same rows a full recomputation would give, without reading events.
    Runs inside the move's transaction.
    """
    leaving = [a for a in old_ancestor_ids if a not in new_ancestor_ids]
    joining = [a for a in new_ancestor_ids if a not in old_ancestor_ids]
    same_key = (
        "billing_dailyusage.meter_id = s.meter_id AND billing_dailyusage.day = s.day "
        "AND billing_dailyusage.dimension = s.dimension AND billing_dailyusage.source = s.source"
    )
    with connection.cursor() as cursor:
        for ancestor in leaving:
            cursor.execute(
                "UPDATE billing_dailyusage SET "
                "quantity = billing_dailyusage.quantity - s.quantity, "
                "event_count = billing_dailyusage.event_count - s.event_count "
                "FROM (SELECT meter_id, day, dimension, source, quantity, event_count "
                "FROM billing_dailyusage WHERE tenant_id = %s) s "
                f"WHERE billing_dailyusage.tenant_id = %s AND {same_key}",
                [tenant.pk, ancestor],
            )
        if leaving:
            DailyUsage.objects.filter(tenant_id__in=leaving, event_count__lte=0).delete()
        for ancestor in joining:
            cursor.execute(
                "INSERT INTO billing_dailyusage "
                "(tenant_id, meter_id, day, dimension, source, quantity, event_count) "
                "SELECT %s, meter_id, day, dimension, source, quantity, event_count "
                "FROM billing_dailyusage WHERE tenant_id = %s "
                "ON CONFLICT (tenant_id, day, meter_id, dimension, source) DO UPDATE SET "
                "quantity = billing_dailyusage.quantity + excluded.quantity, "
                "event_count = billing_dailyusage.event_count + excluded.event_count",
                [ancestor, tenant.pk],
            )
