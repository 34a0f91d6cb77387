"""The rollup: recompute whole days of the tenant billing table from usage events.

Each day is recomputed in its own transaction from the day's events with an id
up to the run's watermark, so running it twice (or again after a crash) gives
the same rows. A run recomputes the days that received events since the last
complete run: late events make their day "dirty" simply by arriving.
"""

import time as clock
import traceback
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.db import connection
from django.db.models import Max, Min
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import tree_write_lock
from billing.aggregation import day_bounds, member_values_sql, unique_value_sql
from billing.models import DailyUsage, RolledDay, RollupRun
from metering.models import Meter, UsageEvent

# Events younger than this are left to the next run: an insert transaction that
# took its id earlier may not have committed yet.
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
    """The highest event id that every earlier-received event has committed below."""
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
    run = RollupRun.objects.create(
        started_at=timezone.now(),
        trigger=trigger,
        watermark=watermark,
        window_start=todo[0] if todo else None,
        window_end=todo[-1] if todo else None,
    )
    if progress is not None:
        progress.reset(total=len(todo))
    try:
        with RollupBatch(todo, watermark, phases) as batch:
            for done, day in enumerate(todo):
                if fail_after_days is not None and done >= fail_after_days:
                    raise RuntimeError(f"simulated crash before {day}")
                result = batch.rollup_day(day)
                run.days_recomputed += 1
                run.rows_written += result.rows_written
                run.events_read += result.events_read
                if progress is not None:
                    progress.update(1)
    except Exception:
        run.status = RollupRun.Status.FAILED
        run.error = traceback.format_exc(limit=5)
        finish(run, started)
        raise
    run.status = RollupRun.Status.SUCCESS
    finish(run, started)
    return run


def finish(run: RollupRun, started: float) -> None:
    run.finished_at = timezone.now()
    run.duration_ms = int((clock.monotonic() - started) * 1000)
    run.save()


class RollupBatch:
    """Work tables for one run: member values of every day to do, read in one pass
    over the events, and each tenant's ancestors (equality joins, not lft/rght ranges).

    They are temporary tables of this database connection, dropped at the end.
    """

    MEMBERS = "rollup_member_values"
    ANCESTORS = "rollup_ancestors"

    def __init__(self, days: list[date], watermark: int, phases: PhaseClock | None = None):
        self.days = days
        self.watermark = watermark
        self.tree_fingerprint = None
        self.phase = phases or PhaseClock()

    # PostgreSQL: room to hash the day groups in memory, and no JIT compilation, whose
    # start-up cost outweighs the work of each per-day statement.
    SESSION_SETTINGS = {"work_mem": "256MB", "jit": "off"}

    def __enter__(self):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for name, value in self.SESSION_SETTINGS.items():
                    cursor.execute(f"SET {name} = '{value}'")
        if self.days:
            with self.phase("stage member values"):
                self.stage_member_values()
        return self

    def __exit__(self, *exc):
        with self.phase("drop work tables"), connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.MEMBERS}")
            cursor.execute(f"DROP TABLE IF EXISTS {self.ANCESTORS}")
            if connection.vendor == "postgresql":
                for name in self.SESSION_SETTINGS:
                    cursor.execute(f"RESET {name}")
        return False

    def stage_member_values(self) -> None:
        """One read of the events of every day to do (id ≤ watermark)."""
        sql, params = member_values_sql(
            first=self.days[0],
            last=self.days[-1],
            max_event_id=self.watermark,
            days=None if len(self.days) == (self.days[-1] - self.days[0]).days + 1 else self.days,
        )
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {self.MEMBERS}")
            cursor.execute(f"CREATE TEMPORARY TABLE {self.MEMBERS} AS {sql}", params)
            cursor.execute(f"CREATE INDEX {self.MEMBERS}_day ON {self.MEMBERS} (day)")
            cursor.execute(f"ANALYZE {self.MEMBERS}")

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
            cursor.execute(f"CREATE INDEX {self.ANCESTORS}_member ON {self.ANCESTORS} (member_id)")

    def ensure_ancestors(self) -> None:
        """Stage the ancestry, again if the tree moved since (checked under the tree lock)."""
        fingerprint = tree_fingerprint()
        if fingerprint != self.tree_fingerprint:
            self.stage_ancestors()
            self.tree_fingerprint = fingerprint

    def rollup_day(self, day: date) -> DayResult:
        """Replace the day's rows with its recomputed subtree totals, in one transaction."""
        phase = self.phase
        with phase("day transactions"), tree_write_lock():
            with phase("ancestors"):
                self.ensure_ancestors()
            with phase("delete day"):
                DailyUsage.objects.filter(day=day).delete()
            with phase("insert totals"):
                rows = self.insert_day_totals(day)
            with phase("distinct values"):
                record_distinct_values(day, self.watermark)
            with phase("mark day"):
                RolledDay.objects.update_or_create(day=day, defaults={"watermark": self.watermark})
                read = self.events_of_day(day)
        return DayResult(rows_written=rows, events_read=read)

    def events_of_day(self, day: date) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COALESCE(SUM(n), 0) FROM {self.MEMBERS} WHERE day = %s",
                [connection.ops.adapt_datefield_value(day)],
            )
            return int(cursor.fetchone()[0])

    def insert_day_totals(self, day: date) -> int:
        """INSERT … SELECT the subtree totals of every tenant for one day.

        Raw SQL because this is a set-based step the ORM cannot express: member
        values (see billing.aggregation) are joined to every ancestor of their
        tenant and summed per ancestor. Runs the same on SQLite and PostgreSQL.
        """
        day_param = connection.ops.adapt_datefield_value(day)
        sql = (
            "INSERT INTO billing_dailyusage "
            "(tenant_id, meter_id, day, dimension, source, quantity, event_count) "
            "SELECT a.ancestor_id, m.meter_id, %s, m.dimension, m.source, SUM(m.value), SUM(m.n) "
            f"FROM {self.MEMBERS} m JOIN {self.ANCESTORS} a ON a.member_id = m.tenant_id "
            "WHERE m.day = %s "
            "GROUP BY a.ancestor_id, m.meter_id, m.dimension, m.source"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [day_param, day_param])
            return cursor.rowcount


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
