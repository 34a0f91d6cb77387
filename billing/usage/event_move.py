"""The billing table's watermarks across the move of the events into ClickHouse.

A watermark counts event ids while the events are in the relational table, and
batch ids once they are in ClickHouse. Two kinds of mark decide what a summary
reads as billed: the last complete run's (the tail starts above it) and the
day marks above it (days a stopped run recomputed hold their events up to their
own mark). The move cuts its batches at each of them, so each such mark m has an
exact counterpart: the highest batch of the move whose events all have ids up
to m. The events with an id ≤ m are then exactly those in batches up to it, and
a summary reads the same events as billed, and the same as tail, after the
switch as before.
"""

from django.db.models import OuterRef, Subquery, Value
from django.db.models.functions import Coalesce

from billing.models import RolledDay, RollupRun
from billing.usage.runs import mark_abandoned_runs
from metering.models import MovedRange


def decisive_marks() -> set[int]:
    """The event ids no batch of the move may straddle: the last complete run's
    watermark and the day marks above it."""
    mark = RollupRun.objects.watermark()
    above = RolledDay.objects.filter(watermark__gt=mark).values_list("watermark", flat=True)
    return {mark, *above} - {0}


def straddled_marks() -> list[int]:
    """Decisive marks that fall inside a moved range: a rollup ran after the range
    was cut, and no batch ends at them."""
    return [
        mark
        for mark in sorted(decisive_marks())
        if MovedRange.objects.filter(first_id__lte=mark, last_id__gt=mark).exists()
    ]


def batch_ending_at_mark():
    """For a row's `watermark` (an event id): the highest batch of the move whose
    events all have ids up to it (0 if none does).

    Exact for the decisive marks, which are cuts. A lower mark (an older run's, a
    day rolled up before the last run) may fall inside a batch and becomes the
    batch before it: only the highest run's mark and the day marks above it are
    ever compared with an event's position, so the lower ones need only stay
    below them."""
    ending = MovedRange.objects.filter(last_id__lte=OuterRef("watermark")).order_by("-last_id")
    return Coalesce(Subquery(ending.values("batch_id")[:1]), Value(0))


def translate_watermarks() -> tuple[int, int]:
    """Turn every run's and every day's watermark from an event id into a batch id
    (run inside the transaction that records the move as finished); returns the
    billing table's watermark before and after."""
    before = RollupRun.objects.watermark()
    # One statement per table, each row from its own old value: no row can be
    # translated twice, whatever the order.
    RollupRun.objects.update(watermark=batch_ending_at_mark())
    RolledDay.objects.update(watermark=batch_ending_at_mark())
    return before, RollupRun.objects.watermark()


def running_rollups() -> list[RollupRun]:
    """Runs still going (a run whose process died is marked abandoned first)."""
    mark_abandoned_runs()
    return list(RollupRun.objects.filter(status=RollupRun.Status.RUNNING))
