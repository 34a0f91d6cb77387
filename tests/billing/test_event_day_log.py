"""The day log: PostgreSQL's event table records the days each insert wrote to,
and the rollup finds new events' days there instead of reading the events."""

import importlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import PlatformPrincipal, Tenant
from billing.models import RollupRun
from billing.usage import usage_summary
from billing.usage.runs import (
    DAY_LOG_TRIGGER,
    FIRES_ALWAYS,
    events_by_day,
    new_events_by_day,
)
from metering.ingestion import ingest_events
from metering.models import EventDayLog, UsageEvent
from metering.stores import event_store
from tests.billing.conftest import billing_table, rollup, send
from tests.billing.oracle import summary_as_dict
from tests.stored import relational_only

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's"),
    relational_only("the log is the relational event table's"),
]


def at(day, hour):
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)


@pytest.fixture
def days():
    today = timezone.now().date()
    return today - timedelta(days=3), today - timedelta(days=2)


def log_rows():
    return list(
        EventDayLog.objects.order_by("day", "id").values_list(
            "day", "first_id", "last_id", "events"
        )
    )


def test_each_insert_logs_its_days_with_their_first_and_last_id(world, days):
    day1, day2 = days
    before = event_store().top()
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, 23)},
        {"tenant": "agent-b", "meter": "emails", "quantity": 1, "at": at(day2, 0)},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, 1)},
    )
    new = UsageEvent.objects.filter(id__gt=before)
    ids = {day: sorted(e.id for e in new if e.occurred_at.date() == day) for day in days}
    assert log_rows() == [
        (day1, ids[day1][0], ids[day1][-1], 2),
        (day2, ids[day2][0], ids[day2][0], 1),
    ]
    top = event_store().top()
    assert new_events_by_day(before, top) == events_by_day(before, top) == {day1: 2, day2: 1}


def test_a_retried_batch_logs_only_the_events_it_stored(world, days):
    """A batch with stored event ids takes the insert that skips them: the log
    counts what was inserted, not what was sent."""
    day1, _ = days
    first = [{"event_id": f"r-{n}", "tenant": "agent-a", "meter": "emails", "quantity": 1,
              "timestamp": at(day1, n).isoformat()} for n in (1, 2)]  # fmt: skip
    again = [*first, {**first[0], "event_id": "r-3"}]
    assert ingest_events(first, principal=PlatformPrincipal()).accepted == 2
    result = ingest_events(again, principal=PlatformPrincipal())
    assert (result.accepted, result.duplicates) == (1, 2)
    assert [(day, events) for day, _, _, events in log_rows()] == [(day1, 2), (day1, 1)]
    ((new_id,),) = UsageEvent.objects.filter(event_id="r-3").values_list("id")
    assert log_rows()[-1][1:3] == (new_id, new_id)


def test_the_rollup_finds_the_new_days_in_the_log_and_forgets_them_once_rolled(world, days):
    day1, day2 = days
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, 12)})
    with CaptureQueriesContext(connection) as queries:
        first = rollup()
    assert first.days_recomputed == 1 and {r[2] for r in billing_table()} == {day1}
    # The new events' days came from the log: no read of the event ids' times.
    assert not any("MIN(e.occurred_at)" in q["sql"] for q in queries.captured_queries)
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day2, 12)})
    second = rollup()
    assert second.days_recomputed == 1 and {r[2] for r in billing_table()} == {day1, day2}
    # The first run's row went when the second started; the second's at the next run.
    assert [row[0] for row in log_rows()] == [day2]
    rollup()
    assert log_rows() == []
    assert RollupRun.objects.watermark() == second.watermark


def test_a_statement_straddling_the_range_makes_its_day_dirty(world, days):
    day1, _ = days
    send(*[{"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, h)}
           for h in (1, 2, 3)])  # fmt: skip
    ((_, first, last, _),) = log_rows()
    assert day1 in new_events_by_day(first, first + 1)
    assert day1 in new_events_by_day(last - 1, last)
    assert new_events_by_day(last, last + 10) == {}


def trigger_state() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgenabled FROM pg_trigger WHERE tgname = %s", [DAY_LOG_TRIGGER])
        return cursor.fetchone()[0]


def set_trigger(state: str) -> None:
    with connection.cursor() as cursor:
        # The test's transaction holds deferred key checks, which ALTER TABLE refuses.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"ALTER TABLE metering_usageevent {state} TRIGGER {DAY_LOG_TRIGGER}")


def test_with_the_trigger_disabled_the_rollup_reads_the_events(world, days):
    _, day2 = days
    assert trigger_state() == FIRES_ALWAYS  # as installed: bulk loads as replica too
    set_trigger("DISABLE")
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day2, 12)})
    assert log_rows() == []
    run = rollup()
    assert run.days_recomputed == 1 and {r[2] for r in billing_table()} == {day2}


def test_events_the_trigger_missed_are_found_after_it_is_re_enabled(world, days):
    """Disabled, events inserted, enabled again plainly: the log lacks those events,
    so the rollup reads the new events until the trigger is enabled ALWAYS."""
    day1, day2 = days
    agent = Tenant.objects.get(slug="agent-a")
    set_trigger("DISABLE")
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, 12)})
    set_trigger("ENABLE")
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day2, 12)})
    assert [row[0] for row in log_rows()] == [day2]
    before = summary_as_dict(usage_summary(agent, day1, day2))
    assert before[("emails", None)] == (Decimal(2), 2)
    run = rollup()
    assert run.days_recomputed == 2 and {r[2] for r in billing_table()} == {day1, day2}
    assert RollupRun.objects.watermark() == run.watermark
    assert summary_as_dict(usage_summary(agent, day1, day2)) == before
    set_trigger("ENABLE ALWAYS")
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, 13)})
    assert rollup().days_recomputed == 1
    assert summary_as_dict(usage_summary(agent, day1, day2))[("emails", None)] == (
        Decimal(3),
        3,
    )


def test_the_migration_logs_the_events_not_rolled_up_yet(world, days):
    """Installed on a database with events, the log starts with one row per day of
    the events past the billing watermark, spanning their ids."""
    day1, day2 = days
    send({"tenant": "agent-b", "meter": "emails", "quantity": 1, "at": at(day2, 5)})
    watermark = rollup().watermark
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day1, 1)},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": at(day2, 1)},
    )
    send({"tenant": "agent-b", "meter": "emails", "quantity": 1, "at": at(day1, 2)})
    top = event_store().top()
    logged = log_rows()
    EventDayLog.objects.all().delete()
    migration = importlib.import_module("metering.migrations.0007_event_day_log")
    with connection.cursor() as cursor:
        cursor.execute(migration.BACKFILL)
    new = UsageEvent.objects.filter(id__gt=watermark)
    ids = {day: sorted(e.id for e in new if e.occurred_at.date() == day) for day in days}
    assert log_rows() == [
        (day1, ids[day1][0], ids[day1][-1], 2),
        (day2, ids[day2][0], ids[day2][-1], 1),
    ]
    assert new_events_by_day(watermark, top) == events_by_day(watermark, top) == {day1: 2, day2: 1}
    # What the trigger had logged, batch by batch, says the same.
    assert {day for day, first, last, _ in logged if last > watermark} == {day1, day2}
