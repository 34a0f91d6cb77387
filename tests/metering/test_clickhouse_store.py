"""What only the ClickHouse event store has to get right: its schema migrations,
the idempotency ledger, batches as positions, and what an aborted batch leaves.
Runs in the suite's ClickHouse mode (USAGE_EVENT_STORE=clickhouse)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import PlatformPrincipal
from billing.usage import usage_summary
from billing.usage.rollup import run_rollup
from billing.usage.runs import current_watermark
from metering.ingestion import ingest_events
from metering.models import EventBatch, EventKey, Meter
from tests.billing.oracle import brute_force, summary_as_dict
from tests.stored import stored_events

pytestmark = pytest.mark.skipif(
    settings.USAGE_EVENT_STORE != "clickhouse", reason="the ClickHouse event store's own rules"
)


def calls(n, tenant="agent-a", quantity="2", at=None, prefix="c"):
    at = at or timezone.now() - timedelta(hours=1)
    return [
        {
            "event_id": f"{prefix}-{i}",
            "tenant": tenant,
            "meter": "call_minutes",
            "quantity": quantity,
            "timestamp": at.isoformat(),
            "attributes": {"direction": "inbound"},
        }
        for i in range(n)
    ]


def send(events):
    return ingest_events(events, principal=PlatformPrincipal())


def calls_used(world):
    today = timezone.now().date()
    return summary_as_dict(usage_summary(world.agent_a, today - timedelta(days=2), today))


def test_migrations_apply_once_and_are_recorded(capsys):
    from metering.clickhouse import client, database

    call_command("ch_migrate")
    assert "up to date" in capsys.readouterr().out
    names = {n for (n,) in client.rows(f"SELECT name FROM {database()}.schema_migrations")}
    assert "0001_usage_events" in names
    engine = client.rows(
        "SELECT engine, partition_key, sorting_key FROM system.tables "
        "WHERE database = {db:String} AND name = 'usage_events'",
        {"db": database()},
    )
    assert engine == [
        ("ReplacingMergeTree", "toYYYYMM(occurred_at)",
         "toDate(occurred_at), tenant_id, meter_id, event_id"),
    ]  # fmt: skip


def test_duplicates_are_answered_as_in_the_table_and_stored_once(world):
    assert send(calls(5)).accepted == 5
    result = send(calls(6))
    assert (result.accepted, result.duplicates) == (1, 5)
    repeated = calls(1, prefix="r") * 2
    assert (send(repeated).accepted, send(repeated).duplicates) == (1, 2)
    assert len(stored_events()) == 7
    # The same id under another tenant is another event.
    assert send(calls(1, tenant="agent-b")).accepted == 1
    assert EventKey.objects.count() == 8
    assert set(EventBatch.objects.values_list("state", flat=True)) == {"committed"}


def test_a_retried_insert_is_stored_once(world):
    from metering.clickhouse import client, events_table
    from metering.stores.clickhouse import COLUMNS, insert_settings

    now = timezone.now()
    row = [[world.agent_a.pk, "x-1", Meter.objects.get(code="emails").pk, Decimal("1"), now, now,
            "api", "", "{}", 10**9, 0]]  # fmt: skip
    once = insert_settings(10**9)
    client.insert(events_table(), row, COLUMNS, settings=once)
    client.insert(events_table(), row, COLUMNS, settings=once)  # the client retrying
    assert client.rows(f"SELECT count() FROM {events_table()} WHERE event_id = 'x-1'") == [(1,)]


def test_a_stray_duplicate_row_is_never_counted(world):
    """Should a second row with a stored key reach the table, reads keep the first."""
    from metering.clickhouse import client, events_table
    from metering.stores.clickhouse import COLUMNS

    send(calls(3))
    before = calls_used(world)
    first = stored_events(event_id="c-0")[0]
    stray = [[first.tenant_id, first.event_id, first.meter_id, Decimal("999"), first.occurred_at,
              first.received_at, "api", first.dimension, "{}", first.position + 5, 0]]  # fmt: skip
    client.insert(events_table(), stray, COLUMNS)
    assert client.rows(f"SELECT count() FROM {events_table()}") == [(4,)]
    assert calls_used(world) == before
    assert [e.quantity for e in stored_events(event_id="c-0")] == [Decimal("2")]
    run_rollup(grace=timedelta(0))
    assert calls_used(world) == before


def test_a_batch_that_fails_after_its_insert_is_left_out_and_can_be_sent_again(world, monkeypatch):
    from metering.stores import clickhouse as store

    send(calls(2, prefix="ok"))
    inserted = store.insert_events

    def insert_then_fail(rows, batch):
        inserted(rows, batch)
        raise ConnectionError("the database went away after ClickHouse took the batch")

    monkeypatch.setattr(store, "insert_events", insert_then_fail)
    with pytest.raises(ConnectionError):
        send(calls(3, prefix="lost"))
    monkeypatch.setattr(store, "insert_events", inserted)
    assert EventBatch.objects.filter(state="abandoned").count() == 1
    assert {e.event_id for e in stored_events()} == {"ok-0", "ok-1"}
    assert calls_used(world)[("call_minutes", None)] == (Decimal("4.000000"), 2)
    # Nothing of it was acknowledged, so the client sends it again: accepted.
    assert send(calls(3, prefix="lost")).accepted == 3
    assert store.purge_abandoned() == 1
    assert len(stored_events()) == 5
    run_rollup(grace=timedelta(0))
    today = timezone.now().date()
    start = today - timedelta(days=2)
    assert calls_used(world) == brute_force(world.agent_a, start, today)


def test_an_open_batch_holds_the_watermark_until_it_commits_or_is_abandoned(world):
    from metering.stores.clickhouse import ABANDON_AFTER, open_batch

    send(calls(1, prefix="a"))
    first = current_watermark()
    in_flight = open_batch()
    send(calls(1, prefix="b"))
    assert current_watermark() == first == in_flight - 1
    assert current_watermark(timedelta(0)) == in_flight + 1  # nothing in flight, the caller says
    EventBatch.objects.filter(pk=in_flight).update(created_at=timezone.now() - ABANDON_AFTER * 2)
    assert current_watermark() == in_flight + 1
    assert EventBatch.objects.get(pk=in_flight).state == "abandoned"


def test_the_ledger_keeps_keys_only_while_events_may_arrive(world):
    from metering.stores.clickhouse import prune_ledger

    send(calls(2))
    today = timezone.now().date()
    assert prune_ledger(today) == 0
    later = today + timedelta(days=settings.USAGE_BACKDATE_DAYS + 2)
    assert prune_ledger(later) == 2
    assert not EventKey.objects.exists()


def test_a_late_event_dirties_its_day(world):
    three_days_ago = timezone.now() - timedelta(days=3)
    send(calls(2, at=three_days_ago))
    run_rollup(grace=timedelta(0))
    send(calls(1, at=three_days_ago, prefix="late", quantity="5"))
    run = run_rollup(grace=timedelta(0))
    assert run.days_recomputed == 1
    today = timezone.now().date()
    with transaction.atomic():
        got = summary_as_dict(usage_summary(world.agent_a, today - timedelta(days=5), today))
    assert got[("call_minutes", None)] == (Decimal("9.000000"), 3)


def test_records_are_read_unmerged_unless_a_key_is_stored_twice(world, users, api, monkeypatch):
    """A page is read without FINAL when none of its keys is stored twice; a stray
    copy sends it to FINAL, and the page still shows each event once, as first stored."""
    from metering.clickhouse import client, events_table
    from metering.stores import clickhouse as store
    from metering.stores.clickhouse import COLUMNS

    send(calls(3))
    reads = []
    plain = store.record_rows
    monkeypatch.setattr(
        store, "record_rows", lambda *args, **kw: reads.append(kw["final"]) or plain(*args, **kw)
    )

    def listed():
        response = api(users["manager_a"]).get("/api/v1/events/", {"tenant": "agent-a"})
        assert response.status_code == 200
        return sorted((r["event_id"], r["quantity"]) for r in response.json()["results"])

    assert listed() == [("c-0", "2.000000"), ("c-1", "2.000000"), ("c-2", "2.000000")]
    assert reads == [False]
    first = stored_events(event_id="c-1")[0]
    stray = [[first.tenant_id, first.event_id, first.meter_id, Decimal("999"), first.occurred_at,
              first.received_at, "api", first.dimension, "{}", first.position + 5, 0]]  # fmt: skip
    client.insert(events_table(), stray, COLUMNS)
    reads.clear()
    assert listed() == [("c-0", "2.000000"), ("c-1", "2.000000"), ("c-2", "2.000000")]
    assert reads == [False, True]
