"""Keep the real-time tail short while usage streams in.

Every usage summary adds up the events received after the last rollup. With
the default daily rollup and a few events a second that tail stays small; at
hundreds of events a second it grows by tens of thousands of events a minute,
and every page and API read pays for it. So, after an ingestion commits, when
the events received since the last rollup pass `USAGE_COMPACT_EVENTS`, a
compaction is queued on the task cluster, at most one every
`USAGE_COMPACT_SECONDS`: `run_compaction` adds the tail's sums to
the stored days (or, when the tail holds gauge or distinct-count events, rolls
its days up whole). The rows are those a rollup gives, so numbers do not change
when it runs; it only moves work from every read to one background task."""

import time as clock
from datetime import date, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from django_q.tasks import async_task

from accounts.services import tree_write_lock
from billing.models import RolledDay, RollupRun
from billing.periods import day_bounds
from billing.usage import clickhouse_reads
from billing.usage.aggregations import ADDS, AGGREGATIONS, aggregations_where
from billing.usage.rollup import run_rollup
from billing.usage.runs import (
    current_watermark,
    new_events_by_day,
    recorded_run,
)
from billing.usage.sql import placeholders
from metering.models import Meter, UsageEvent
from metering.stores import event_store, uses_clickhouse

QUEUED_KEY = "billing:compaction-queued"
# Compaction runs are kept this long (there may be tens of thousands a day).
KEEP_COMPACTION_RUNS = timedelta(days=7)


def waiting_events(limit: int) -> int:
    """How many events arrived after the last rollup, counted up to `limit` (a short
    primary-key range scan; ids have gaps, so their difference would overcount)."""
    return event_store().waiting(RollupRun.objects.watermark(), limit)


def compaction_due() -> bool:
    threshold = settings.USAGE_COMPACT_EVENTS
    return threshold > 0 and waiting_events(threshold) >= threshold


def request_compaction() -> bool:
    """Queue a compaction if the tail is long and none was queued lately."""
    # One cache read spares every batch of a busy stream the count of the tail.
    if cache.get(QUEUED_KEY) or not compaction_due():
        return False
    # cache.add is atomic (Redis SET NX; locally per cache): one queue per interval.
    if not cache.add(QUEUED_KEY, True, timeout=settings.USAGE_COMPACT_SECONDS):
        return False
    async_task("billing.tasks.compact_tail", task_name="compact-tail", group="compaction")
    return True


def prune_compaction_runs() -> int:
    """Forget compaction runs older than KEEP_COMPACTION_RUNS, except the one holding
    the highest watermark (the billing table's mark, whatever its age)."""
    newest = RollupRun.objects.filter(status=RollupRun.Status.SUCCESS).order_by("-watermark")
    old = RollupRun.objects.filter(
        trigger="compaction", started_at__lt=timezone.now() - KEEP_COMPACTION_RUNS
    )
    if (mark := newest.first()) is not None:
        old = old.exclude(pk=mark.pk)
    return old.delete()[0]


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
    days = sorted(new_events_by_day(previous, watermark))
    rolled = RolledDay.objects.filter(day__in=days).count()
    if not days or rolled < len(days) or tail_has_other_than_additive(previous, watermark):
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


def tail_has_other_than_additive(after_id: int, up_to_id: int) -> bool:
    """Whether an event with after_id < id ≤ up_to_id is of a meter whose day value
    is not a sum of its events' values (a gauge, a distinct count)."""
    others = Meter.objects.exclude(aggregation__in=aggregations_where(ADDS))
    meter_ids = list(others.values_list("pk", flat=True))
    if uses_clickhouse():
        return clickhouse_reads.has_events_of(after_id, up_to_id, meter_ids)
    return UsageEvent.objects.filter(
        id__gt=after_id, id__lte=up_to_id, meter_id__in=meter_ids
    ).exists()


def event_value_sql() -> tuple[str, list]:
    """One event `e`'s contribution to its day's value, for the meters whose day
    values add up (an event of a count meter counts 1, of a sum meter its quantity)."""
    adding = Meter.objects.filter(aggregation__in=aggregations_where(ADDS))
    by_aggregation: dict[str, list[int]] = {}
    for pk, aggregation in adding.values_list("pk", "aggregation"):
        by_aggregation.setdefault(aggregation, []).append(pk)
    cases, params = [], []
    for name, ids in by_aggregation.items():
        rule = AGGREGATIONS[name]
        cases.append(f"WHEN e.meter_id IN ({placeholders(ids)}) THEN {rule.event_value}")
        params += ids
    return (f"CASE {' '.join(cases)} END" if cases else "NULL"), params


def add_tail_to_day(day: date, after_id: int, up_to_id: int) -> int:
    """Add the day's events with after_id < id ≤ up_to_id to the stored subtree
    totals of their tenant and every ancestor. Returns the rows touched.

    Raw SQL: one INSERT … SELECT … ON CONFLICT DO UPDATE that adds, the same on
    SQLite and PostgreSQL. The tail is summed per member tenant first, then each
    sum goes to the member and its ancestors, found by walking parent links (a
    recursive CTE over the few members in the tail: a join on lft/rght ranges
    scanned the tree once per member). Each event adds its aggregation's value.
    """
    tail, tail_params = day_tail_sql(day, after_id, up_to_id)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH RECURSIVE tail AS ({tail}), "
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
            [*tail_params, connection.ops.adapt_datefield_value(day)],
        )
        return max(cursor.rowcount, 0)


def day_tail_sql(day: date, after_id: int, up_to_id: int) -> tuple[str, list]:
    """The day's events with after_id < id ≤ up_to_id summed per member, meter,
    dimension and source: (tenant_id, meter_id, dimension, source, quantity, n)."""
    if uses_clickhouse():
        adding = Meter.objects.filter(aggregation__in=aggregations_where(ADDS))
        value_of = {
            pk: AGGREGATIONS[aggregation].event_value.removeprefix("e.")
            for pk, aggregation in adding.values_list("pk", "aggregation")
        }
        return clickhouse_reads.day_tail_sql(day, after_id, up_to_id, value_of)
    value, value_params = event_value_sql()
    start, end = day_bounds(day, day)
    ops = connection.ops
    return (
        "SELECT e.tenant_id, e.meter_id, e.dimension, e.source, "
        f"SUM({value}) AS quantity, COUNT(*) AS n FROM metering_usageevent e "
        "WHERE e.id > %s AND e.id <= %s AND e.occurred_at >= %s AND e.occurred_at < %s "
        "GROUP BY e.tenant_id, e.meter_id, e.dimension, e.source",
        [*value_params, after_id, up_to_id, ops.adapt_datetimefield_value(start),
         ops.adapt_datetimefield_value(end)],
    )  # fmt: skip
