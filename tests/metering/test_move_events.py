"""Moving an existing deployment's events from the relational table into ClickHouse
(`manage.py move_events_to_clickhouse`): every event once, the same summaries,
the rollup's watermarks translated, and a move killed half way finished by the
next run."""

import importlib.util
from datetime import UTC, datetime, time, timedelta
from itertools import count

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from accounts.models import PlatformPrincipal
from billing.models import RolledDay, RollupRun
from billing.usage import usage_summary
from billing.usage.rollup import run_rollup
from metering.clickhouse import client, events_table
from metering.ingestion import BatchRejected, ingest_events
from metering.models import EventBatch, EventKey, EventMove, MovedRange, UsageEvent
from metering.stores import event_store, move
from tests.billing.oracle import summary_as_dict

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("chdb") is None,
    reason="the ClickHouse extra is not installed (pip install -e '.[clickhouse]')",
)

SERIAL = count()
CHUNK = "3"


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory):
    """One engine directory for the whole session: the embedded engine opens one
    directory per process, and the process keeps its client."""
    if django_settings.CLICKHOUSE_URL:  # the suite runs on ClickHouse already
        return django_settings.CLICKHOUSE_URL
    url = f"chdb:///{tmp_path_factory.mktemp('clickhouse')}"
    from metering.clickhouse.schema import migrate

    with override_settings(CLICKHOUSE_URL=url):
        migrate(report=lambda line: None)
    return url


@pytest.fixture(autouse=True)
def relational_store(settings, clickhouse_url):
    """Events go to the relational table; ClickHouse, empty, waits at its URL."""
    settings.USAGE_EVENT_STORE = "orm"
    settings.CLICKHOUSE_URL = clickhouse_url
    client.command(f"TRUNCATE TABLE {events_table()}")


@pytest.fixture
def no_merges():
    """ClickHouse's background merges would fold an event stored twice into one
    row: held off, a row count shows every copy."""
    client.command(f"SYSTEM STOP MERGES {events_table()}")
    yield
    client.command(f"SYSTEM START MERGES {events_table()}")


def switch_to_clickhouse(settings):
    settings.USAGE_EVENT_STORE = "clickhouse"


def utc_day(days_ago: int, hour: int = 12) -> datetime:
    today = timezone.now().date()
    return datetime.combine(today - timedelta(days=days_ago), time(hour), tzinfo=UTC)


def send(*events):
    """Ingest (tenant, meter, quantity, when, attributes) events; returns their ids."""
    payload = [
        {"event_id": f"m-{next(SERIAL)}", "tenant": tenant, "meter": meter,
         "quantity": quantity, "timestamp": at.isoformat(), "attributes": attributes}
        for tenant, meter, quantity, at, attributes in events
    ]  # fmt: skip
    ingest_events(payload, principal=PlatformPrincipal())
    return [event["event_id"] for event in payload]


def usage_of(day: int):
    """A day's mixed usage: sums by dimension, a gauge, a distinct count, a count."""
    at = utc_day(day)
    return [
        ("agent-a", "processing_units", "12.5", at, {"activity": "ocr"}),
        ("agent-a", "processing_units", "0.25", at, {"activity": "redaction"}),
        ("org-a", "storage_units", str(10 + day), at, {"tier": "hot"}),
        ("agent-a", "active_users", "1", at, {"user_id": f"u{day % 2}"}),
        ("agent-b", "chat_sessions", "1", at + timedelta(hours=1), {"channel": "web"}),
    ]


def rollup(**kwargs):
    return run_rollup(grace=timedelta(0), **kwargs)


def summaries(world, days: int = 12) -> dict:
    """What the portal shows for a reseller and a partner, by meter, day and child."""
    end = timezone.now().date()
    start = end - timedelta(days=days)
    return {
        (tenant.slug, group_by): summary_as_dict(usage_summary(tenant, start, end, group_by))
        for tenant in (world.reseller_a, world.partner, world.reseller_b)
        for group_by in ("meter", "day", "child")
    }


def stored() -> list[tuple]:
    """The stored events, less their position (an id in one store, a batch in the other)."""
    return sorted(event[:-1] for event in event_store().events())


def clickhouse_rows() -> int:
    """Rows in ClickHouse, an event stored twice counted twice."""
    return client.rows(f"SELECT count() FROM {events_table()}")[0][0]


def move_events(*options):
    call_command("move_events_to_clickhouse", "--chunk", CHUNK, "--no-progress", *options)


@pytest.fixture
def history(world):
    """Events billed by a complete run, a day recomputed by a run that stopped half
    way (its mark above the watermark), and a tail of events after both."""
    send(*usage_of(9), *usage_of(5), *usage_of(2))
    rollup()
    send(*usage_of(5), *usage_of(2))
    stopped = rollup(days=[utc_day(5).date()])
    RollupRun.objects.filter(pk=stopped.pk).update(status=RollupRun.Status.FAILED)
    send(*usage_of(9), *usage_of(2), *usage_of(0))
    watermark = RollupRun.objects.watermark()
    day_mark = RolledDay.objects.get(day=utc_day(5).date()).watermark
    assert 0 < watermark < day_mark < event_store().top()
    return watermark, day_mark


def test_the_moved_events_give_the_same_summaries_and_the_watermarks_follow(
    world, history, settings, capsys
):
    watermark, day_mark = history
    before, events = summaries(world), stored()

    move_events()
    assert "Both stores hold the same events per tenant and meter." in capsys.readouterr().out
    switch_to_clickhouse(settings)

    assert stored() == events
    assert summaries(world) == before
    # Each mark became the batch holding the events up to it: no batch straddles one.
    new_mark = RollupRun.objects.watermark()
    assert MovedRange.objects.get(batch_id=new_mark).last_id == watermark
    new_day_mark = RolledDay.objects.get(day=utc_day(5).date()).watermark
    assert MovedRange.objects.get(batch_id=new_day_mark).last_id == day_mark
    assert EventMove.objects.get().watermark_after == new_mark

    # The rollup goes on from there in ClickHouse, with the same outcome.
    run = rollup()
    assert run.watermark == EventBatch.objects.latest("pk").pk
    assert summaries(world) == before


def test_a_second_run_stores_nothing_twice(world, history, settings, capsys, no_merges):
    move_events()
    batches = EventBatch.objects.count()
    move_events()
    assert "Moved 40 events" in capsys.readouterr().out
    assert EventBatch.objects.count() == batches
    assert clickhouse_rows() == UsageEvent.objects.count() == 40


@pytest.mark.parametrize("stored_first", [False, True], ids=["before-insert", "after-insert"])
def test_a_move_killed_half_way_is_finished_by_the_next_run(
    world, history, settings, monkeypatch, no_merges, stored_first
):
    """The second batch's insert fails once: before reaching ClickHouse, or after
    ClickHouse stored it but before the batch was committed here."""
    before, events = summaries(world), stored()
    insert, calls = move.insert_events, count(1)

    def failing_once(rows, batch, settings=None):
        if next(calls) == 2:
            if stored_first:
                insert(rows, batch, settings=settings)
            raise RuntimeError("killed")
        insert(rows, batch, settings=settings)

    monkeypatch.setattr(move, "insert_events", failing_once)
    with pytest.raises(RuntimeError, match="killed"):
        move_events()
    assert move.pending_range() is not None
    assert EventMove.objects.get().finished_at is None
    assert RollupRun.objects.watermark() == history[0]  # not translated yet

    # What ClickHouse stored of the batch is dropped by its token, not deleted.
    monkeypatch.setattr(move, "resend", lambda *args: pytest.fail("the batch was resent"))
    move_events()
    assert move.pending_range() is None
    assert clickhouse_rows() == UsageEvent.objects.count()
    switch_to_clickhouse(settings)
    assert stored() == events
    assert summaries(world) == before


@pytest.mark.parametrize("meanwhile", ["stored-under-another-token", "abandoned"])
def test_a_batch_left_in_doubt_is_replaced_not_doubled(
    world, history, settings, monkeypatch, no_merges, meanwhile
):
    """The killed run's batch reached ClickHouse in a form its token cannot match (a
    server that forgot the token), or a rollup in ClickHouse mode abandoned it."""
    before, events = summaries(world), stored()
    insert, calls = move.insert_events, count(1)

    def storing_then_failing(rows, batch, settings=None):
        if next(calls) == 2:
            insert(rows, batch, settings={"insert_deduplication_token": "another"})
            raise RuntimeError("killed")
        insert(rows, batch, settings=settings)

    monkeypatch.setattr(move, "insert_events", storing_then_failing)
    with pytest.raises(RuntimeError, match="killed"):
        move_events()
    left = move.pending_range().batch_id
    if meanwhile == "abandoned":
        EventBatch.objects.filter(pk=left).update(state=EventBatch.State.ABANDONED)
    # The batch's rows are deleted by a mutation, which stopped merges would hold
    # back for ever. A merge may now fold copies, yet count() still sees any that
    # are left: the rows below must match the events exactly.
    client.command(f"SYSTEM START MERGES {events_table()}")
    move_events()
    assert clickhouse_rows() == UsageEvent.objects.count()
    if meanwhile == "abandoned":
        assert EventBatch.objects.get(pk=left).state == EventBatch.State.PURGED
        assert not MovedRange.objects.filter(batch_id=left).exists()
    switch_to_clickhouse(settings)
    assert stored() == events
    assert summaries(world) == before


def test_recent_keys_go_into_the_ledger_and_a_resent_event_is_a_duplicate(world, settings):
    old = send(("agent-a", "emails", "1", utc_day(20), {}))
    recent = send(("agent-a", "emails", "1", utc_day(1), {}), ("agent-b", "emails", "1",
                   utc_day(0), {}))  # fmt: skip
    rollup()
    settings.USAGE_BACKDATE_DAYS = 10
    move_events()
    switch_to_clickhouse(settings)

    assert set(EventKey.objects.values_list("event_id", flat=True)) == set(recent)
    again = [
        {"event_id": recent[0], "tenant": "agent-a", "meter": "emails", "quantity": 1,
         "timestamp": utc_day(1).isoformat()},
    ]  # fmt: skip
    result = ingest_events(again, principal=PlatformPrincipal())
    assert (result.accepted, result.duplicates) == (0, 1)
    with pytest.raises(BatchRejected):  # older than the window: refused, not a duplicate
        ingest_events([{**again[0], "event_id": old[0], "timestamp": utc_day(20).isoformat()}],
                      principal=PlatformPrincipal())  # fmt: skip
    assert clickhouse_rows() == 3


def test_dry_run_counts_only(world, history, capsys):
    watermark, day_mark = history
    move_events("--dry-run")
    out = capsys.readouterr().out
    assert "40 events would be moved in 14 batches of at most 3" in out
    assert f"A batch would end at event {watermark} (a billing watermark)." in out
    assert f"A batch would end at event {day_mark} (a billing watermark)." in out
    assert not EventBatch.objects.exists()
    assert not EventMove.objects.exists()
    assert clickhouse_rows() == 0


def test_refuses_without_clickhouse_or_its_schema(world, settings, monkeypatch, clickhouse_url):
    settings.CLICKHOUSE_URL = ""
    with pytest.raises(CommandError, match="Set CLICKHOUSE_URL"):
        move_events()
    settings.CLICKHOUSE_URL = clickhouse_url
    monkeypatch.setattr("metering.clickhouse.schema.database", lambda: "usage_portal_unmigrated")
    with pytest.raises(CommandError, match="ch_migrate"):
        move_events()


def test_refuses_to_mix_with_events_ingested_into_clickhouse(world, settings):
    settings.USAGE_EVENT_STORE = "clickhouse"
    send(("agent-a", "emails", "1", utc_day(1), {}))
    with pytest.raises(CommandError, match="ingested into it directly"):
        move_events()
