"""Keep the real-time tail short while usage streams in.

Every usage summary adds up the events received after the last rollup. With
the default daily rollup and a few events a second that tail stays small; at
hundreds of events a second it grows by tens of thousands of events a minute,
and every page and API read pays for it. So, after an ingestion commits, when
the events received since the last rollup pass `USAGE_COMPACT_EVENTS`, a
compaction is queued on the task cluster, at most one every
`USAGE_COMPACT_SECONDS`: `billing.rollup.run_compaction` adds the tail's sums to
the stored days (or, when the tail holds gauge or distinct-count events, rolls
its days up whole). The rows are those a rollup gives, so numbers do not change
when it runs; it only moves work from every read to one background task."""

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_q.tasks import async_task

from billing.models import RollupRun
from metering.models import UsageEvent

QUEUED_KEY = "billing:compaction-queued"
# Compaction runs are kept this long (there may be tens of thousands a day).
KEEP_COMPACTION_RUNS = timedelta(days=7)


def waiting_events(limit: int) -> int:
    """How many events arrived after the last rollup, counted up to `limit` (a short
    primary-key range scan; ids have gaps, so their difference would overcount)."""
    return UsageEvent.objects.filter(id__gt=RollupRun.objects.watermark())[:limit].count()


def compaction_due() -> bool:
    threshold = settings.USAGE_COMPACT_EVENTS
    return threshold > 0 and waiting_events(threshold) >= threshold


def request_compaction() -> bool:
    """Queue a compaction if the tail is long and none was queued lately."""
    if not compaction_due():
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
