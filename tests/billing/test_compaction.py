"""Compaction keeps the real-time tail short; the exact watermark and overlapping runs
keep every number right while it does."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone
from django_q.models import OrmQ

from accounts.models import PlatformPrincipal
from billing.models import RolledDay, RollupRun
from billing.tasks import compact_tail
from billing.usage import compaction, usage_summary
from billing.usage.compaction import prune_compaction_runs, run_compaction, waiting_events
from billing.usage.rollup import RollupBatch
from billing.usage.runs import current_watermark
from metering.ingestion import ingest_events
from metering.models import UsageEvent
from metering.stores.table import committed_ceiling
from tests.billing.conftest import billing_table, rollup, send
from tests.billing.oracle import brute_force, summary_as_dict
from tests.stored import relational_only

EMAIL = {"tenant": "agent-a", "meter": "emails", "quantity": 1}


def queued_compactions() -> int:
    return sum(1 for task in OrmQ.objects.all() if task.func() == "billing.tasks.compact_tail")


def test_a_long_tail_queues_one_compaction_per_interval(
    world, settings, django_capture_on_commit_callbacks, monkeypatch
):
    settings.USAGE_COMPACT_EVENTS = 5
    settings.USAGE_COMPACT_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=True):
        send(*[EMAIL] * 3)
    assert queued_compactions() == 0  # 3 events wait: below the threshold
    with django_capture_on_commit_callbacks(execute=True):
        send(*[EMAIL] * 3)
    assert queued_compactions() == 1
    counted = []
    monkeypatch.setattr(compaction, "waiting_events", lambda limit: counted.append(limit) or limit)
    with django_capture_on_commit_callbacks(execute=True):
        send(*[EMAIL] * 10)
    assert queued_compactions() == 1  # one per interval, however long the tail
    assert counted == []  # and while one is queued, batches do not count the tail


def test_compaction_is_a_rollup_that_changes_no_number(world, settings):
    settings.USAGE_COMPACT_EVENTS = 5
    today = timezone.now().date()
    rollup()
    send(*[EMAIL] * 4, {"tenant": "org-a", "meter": "call_minutes", "quantity": "2.5"})
    send({"tenant": "agent-a", "meter": "storage_units", "quantity": "7",
          "attributes": {"tier": "hot"}})  # fmt: skip
    before = {
        (tenant.slug, group_by): summary_as_dict(usage_summary(tenant, today, today, group_by))
        for tenant in (world.partner, world.org_a, world.agent_a)
        for group_by in ("meter", "child", "day")
    }
    assert waiting_events(100) == 6
    outcome = compact_tail()
    run = RollupRun.objects.get(pk=outcome["run"])
    assert (run.trigger, run.status, run.events_read) == ("compaction", "success", 6)
    assert waiting_events(100) == 0
    for (slug, group_by), numbers in before.items():
        tenant = world.partner.__class__.objects.get(slug=slug)
        after = summary_as_dict(usage_summary(tenant, today, today, group_by))
        assert after == numbers == brute_force(tenant, today, today, group_by)


def test_compaction_adds_the_tail_to_the_rows_a_recomputation_would_give(world):
    today = timezone.now()
    yesterday = today - timedelta(days=1)
    minutes = {"meter": "call_minutes", "attributes": {"direction": "inbound"}}
    send({**minutes, "tenant": "agent-a", "quantity": "1.25", "at": yesterday}, EMAIL)
    rollup()
    send(
        {**minutes, "tenant": "agent-a", "quantity": "2.5", "at": yesterday},  # a late event
        {**minutes, "tenant": "org-a", "quantity": "0.125", "at": today},  # its own usage
        {**minutes, "tenant": "agent-a", "quantity": "3", "at": today, "source": "service"},
        {**minutes, "tenant": "agent-b", "quantity": "7", "at": today},  # another reseller
        EMAIL,
        {**EMAIL, "attributes": {"campaign": "x"}},
    )
    run = run_compaction()
    assert (run.trigger, run.status, run.events_read) == ("compaction", "success", 0)  # tail only
    assert run.days_recomputed == 2 and waiting_events(100) == 0
    compacted = billing_table()
    rollup(days=[yesterday.date(), today.date()])  # a full recomputation of both days
    assert billing_table() == compacted
    for tenant in (world.partner, world.reseller_a, world.org_a, world.agent_a, world.reseller_b):
        for group_by in ("meter", "child", "day", "source"):
            got = summary_as_dict(usage_summary(tenant, yesterday.date(), today.date(), group_by))
            assert got == brute_force(tenant, yesterday.date(), today.date(), group_by)


def test_compaction_after_a_rollup_of_chosen_days_counts_every_event_once(world):
    """`rollup --day` redid one day and kept the watermark (another day had new
    events too): compaction adds to each day only what its rows do not hold."""
    today = timezone.now()
    yesterday = today - timedelta(days=1)
    send({**EMAIL, "at": yesterday}, {**EMAIL, "at": today})
    rollup()
    send({**EMAIL, "at": yesterday}, {**EMAIL, "at": today}, {**EMAIL, "at": today})
    kept = RollupRun.objects.watermark()
    assert rollup(days=[today.date()]).watermark == kept  # yesterday's new event waits
    run = run_compaction()
    assert run.status == "success" and RollupRun.objects.watermark() > kept
    assert waiting_events(100) == 0
    compacted = billing_table()
    rollup(days=[yesterday.date(), today.date()])
    assert billing_table() == compacted
    for tenant in (world.partner, world.agent_a):
        got = summary_as_dict(usage_summary(tenant, yesterday.date(), today.date(), "day"))
        assert got == brute_force(tenant, yesterday.date(), today.date(), "day")
        assert sum(n for _, n in got.values()) == 5


def test_compaction_recomputes_the_day_when_the_tail_holds_a_gauge_or_a_new_day(world):
    today = timezone.now().date()
    send(EMAIL)
    assert run_compaction().events_read == 1  # today never rolled up: the ordinary rollup
    send(EMAIL)
    assert run_compaction().events_read == 0  # summable only: the tail is added
    send({"tenant": "agent-a", "meter": "storage_units", "quantity": "7",
          "attributes": {"tier": "hot"}})  # fmt: skip
    assert run_compaction().events_read == 3  # a gauge: the whole day again
    got = summary_as_dict(usage_summary(world.org_a, today, today))
    assert got == brute_force(world.org_a, today, today)


def test_an_older_run_never_overwrites_a_day_a_newer_run_wrote(world):
    today = timezone.now().date()
    send(EMAIL)
    older_mark = current_watermark(grace=timedelta(0))
    send(EMAIL, EMAIL)
    rollup()  # the newer run: three emails on today
    newer_mark = RolledDay.objects.get(day=today).watermark
    assert newer_mark > older_mark
    # A run that read the events up to the older mark commits last.
    with RollupBatch([today], older_mark) as batch:
        result = batch.rollup_days([today])
    assert result.rows_written == 0
    assert RolledDay.objects.get(day=today).watermark == newer_mark
    got = summary_as_dict(usage_summary(world.org_a, today, today))
    assert got == brute_force(world.org_a, today, today, "meter")
    assert got[("emails", None)] == (Decimal(3), 3)


@relational_only("event ids in flight; batches in flight: tests/metering/test_clickhouse_store")
@pytest.mark.django_db(transaction=True)
def test_the_watermark_never_passes_an_insert_in_flight(world):
    """An ingestion holding its transaction open: the ceiling stays below its ids
    (SQLite) or waits for it to end (PostgreSQL), and the fallback stays below too."""
    send(EMAIL)
    committed = UsageEvent.objects.get().pk
    inserted, release = threading.Event(), threading.Event()

    def slow_ingestion():
        try:
            with transaction.atomic():
                ingest_events([{**EMAIL, "event_id": "in-flight"}], principal=PlatformPrincipal())
                inserted.set()
                release.wait(30)
        finally:
            connections.close_all()

    writer = threading.Thread(target=slow_ingestion)
    writer.start()
    try:
        assert inserted.wait(30)
        if connection.vendor == "postgresql":
            assert committed_ceiling(wait_seconds=0.2) is None  # must wait for the insert
            assert current_watermark() <= committed  # fallback: the grace period
        else:
            assert committed_ceiling() == committed
            assert current_watermark() == committed
    finally:
        release.set()
        writer.join()
    in_flight = UsageEvent.objects.get(event_id="in-flight").pk
    assert committed_ceiling() == in_flight == current_watermark()


def test_old_compaction_runs_are_pruned_but_the_watermark_is_kept(world):
    send(EMAIL)
    rollup()
    send(EMAIL)
    holder = run_compaction()  # holds the highest watermark
    older = run_compaction()  # nothing new: same watermark, older id
    recent = run_compaction()
    week_ago = timezone.now() - timedelta(days=8)
    RollupRun.objects.filter(pk__in=[holder.pk, older.pk]).update(started_at=week_ago)
    RollupRun.objects.filter(pk=holder.pk).update(watermark=holder.watermark + 1)
    assert prune_compaction_runs() == 1
    assert set(RollupRun.objects.filter(trigger="compaction").values_list("pk", flat=True)) == {
        holder.pk,
        recent.pk,
    }
    assert RollupRun.objects.watermark() == holder.watermark + 1
