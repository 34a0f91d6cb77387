"""Rollup runs as the operator sees them: the watermark a run reads up to, the
days it must redo, and its RollupRun record (success, failure with the
traceback, or abandoned when its process died)."""

import logging
import os
import socket
import time as clock
import traceback
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, date, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing.models import RollupRun
from billing.usage import clickhouse_reads
from billing.usage.sql import event_day_sql
from billing.usage.values import as_date
from metering.models import EventDayLog, UsageEvent
from metering.stores import event_store, uses_clickhouse

# Where the exact ceiling cannot be had in time (see committed_ceiling), events
# younger than this are left to the next run: an insert transaction that took its
# id earlier may not have committed yet.
COMMIT_GRACE = timedelta(seconds=10)

logger = logging.getLogger(__name__)


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
    """The highest event position (id, or batch in ClickHouse) that every
    earlier-received event has committed below.

    `grace` zero: the highest one, for callers that know no insert is in flight.
    """
    return event_store().watermark(grace)


def days_with_events(min_id: int, max_id: int) -> list[date]:
    """UTC days of the events with min_id < id ≤ max_id."""
    return sorted(events_by_day(min_id, max_id))


def events_by_day(min_id: int, max_id: int) -> dict[date, int]:
    """How many events with min_id < id ≤ max_id each UTC day holds.

    Raw SQL with the rollup's own day expression: on SQLite, Django's TruncDate
    calls a Python function per event, which cost an incremental rollup more
    than recomputing the day."""
    if uses_clickhouse():
        return clickhouse_reads.events_by_day(min_id, max_id)
    table = UsageEvent._meta.db_table
    with connection.cursor() as cursor:
        # New events mostly fall on one day: their first and last time and their
        # count cost half of turning every event's time into its day.
        cursor.execute(
            f"SELECT MIN(e.occurred_at), MAX(e.occurred_at), COUNT(*) FROM {table} e "
            "WHERE e.id > %s AND e.id <= %s",
            [min_id, max_id],
        )
        first, last, count = cursor.fetchone()
        if not count:
            return {}
        if utc_day(first) == utc_day(last):
            return {utc_day(first): count}
        cursor.execute(
            f"SELECT {event_day_sql()}, COUNT(*) FROM {table} e "
            "WHERE e.id > %s AND e.id <= %s GROUP BY 1",
            [min_id, max_id],
        )
        return {as_date(day): n for day, n in cursor.fetchall()}


def new_events_by_day(previous: int, watermark: int) -> dict[date, int]:
    """The days events with previous < id ≤ watermark fell on, and about how many,
    for a run whose `previous` is the billing watermark.

    On PostgreSQL from the day log the event table's trigger writes
    (EventDayLog): a read of a few rows per batch instead of every new event. A
    logged statement whose ids straddle either bound counts whole, so a day may
    be in it for events just outside the range: it is then recomputed needlessly,
    never missed. The log's rows at or below `previous` are forgotten here: no
    later run reads below it.

    The log is trusted only while its trigger fires always, as migration 0007
    installs it. Disabled, or re-enabled plainly (it may have missed inserts
    meanwhile), the new events themselves are read, which also finds the days of
    events inserted while it was off.
    """
    state = day_log_state()
    if state is None:
        return events_by_day(previous, watermark)
    log = EventDayLog._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {log} WHERE last_id <= %s", [previous])
        if state != FIRES_ALWAYS:
            logger.warning(
                "The event table's day-log trigger is not enabled ALWAYS (state %r): the "
                "rollup reads the new events instead. After a rollup has run, restore it "
                "with ALTER TABLE %s ENABLE ALWAYS TRIGGER %s.",
                state, UsageEvent._meta.db_table, DAY_LOG_TRIGGER,
            )  # fmt: skip
            return events_by_day(previous, watermark)
        cursor.execute(
            f"SELECT day, SUM(events) FROM {log} WHERE last_id > %s AND first_id <= %s "
            "GROUP BY day",
            [previous, watermark],
        )
        return {as_date(day): int(n) for day, n in cursor.fetchall()}


DAY_LOG_TRIGGER = "metering_usageevent_log_days"
FIRES_ALWAYS = "A"  # pg_trigger.tgenabled: 'O' origin and local sessions, 'D' disabled


def day_log_state() -> str | None:
    """The day-log trigger's pg_trigger.tgenabled, or None where there is none (SQLite,
    the ClickHouse store, a database migrated back before it)."""
    if uses_clickhouse() or connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgenabled FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)",
            [DAY_LOG_TRIGGER, UsageEvent._meta.db_table],
        )
        row = cursor.fetchone()
    return None if row is None else row[0]


def utc_day(moment) -> date:
    """The UTC day of a time as the cursor returns it: SQLite's stored UTC text, or a
    datetime (aware, or naive in UTC)."""
    if isinstance(moment, str):
        return date.fromisoformat(moment[:10])
    return (moment.astimezone(UTC) if moment.tzinfo else moment).date()


def all_event_days() -> list[date]:
    return days_with_events(0, event_store().top())


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


def finish(run: RollupRun, started: float) -> None:
    run.finished_at = timezone.now()
    run.duration_ms = int((clock.monotonic() - started) * 1000)
    run.save()
