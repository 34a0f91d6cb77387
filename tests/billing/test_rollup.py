from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Tenant
from billing.models import DailyUsage, RolledDay, RollupRun
from billing.usage import UsageFilters, usage_summary
from billing.usage import rollup as rollup_module
from billing.usage.rollup import RollupBatch, roll_up_new_days
from billing.usage.runs import PhaseClock, current_watermark
from metering.models import Meter
from tests.billing.conftest import billing_table, rollup, send
from tests.billing.oracle import brute_force, summary_as_dict
from tests.factories import make_tenant


def crash_writing(monkeypatch, day):
    """Make the rollup fail inside the transaction that writes `day`, after writing
    the days before it in that transaction: a crash mid-transaction."""
    write_days = RollupBatch.write_days

    def crashing(batch, days):
        write_days(batch, [d for d in days if d < day])
        if day in days:
            raise RuntimeError(f"simulated crash before {day}")

    monkeypatch.setattr(RollupBatch, "write_days", crashing)


@pytest.fixture
def day1_day2():
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    if today > timezone.now():
        today -= timedelta(days=1)
    return today - timedelta(days=2), today - timedelta(days=1)


def test_gauges_aggregate_per_tenant_first_then_over_tenants(world, day1_day2):
    day1, day2 = day1_day2
    storage = {"meter": "storage_units", "attributes": {"tier": "hot"}}
    send(
        {**storage, "tenant": "agent-a", "quantity": "30", "at": day1},
        {**storage, "tenant": "agent-a", "quantity": "10", "at": day1 + timedelta(hours=1)},
        {**storage, "tenant": "org-a", "quantity": "5", "at": day1},
        {**storage, "tenant": "agent-a", "quantity": "20", "at": day2},
        {**storage, "tenant": "org-a", "quantity": "40", "at": day2},
    )
    for when in ("before", "after"):
        summary = usage_summary(world.org_a, day1.date(), day2.date())
        [row] = summary.rows
        # Day 1: 30 + 5 = 35; day 2: 20 + 40 = 60; the period's max is 60, not 40 + 30.
        assert row.quantity == Decimal("60"), when
        by_day = {
            r.key: r.quantity
            for r in usage_summary(world.org_a, day1.date(), day2.date(), "day").rows
        }
        assert by_day == {day1.date(): Decimal("35"), day2.date(): Decimal("60")}
        rollup()


def test_rollup_twice_gives_identical_rows(world, day1_day2):
    day1, _ = day1_day2
    send(
        {
            "tenant": "agent-a",
            "meter": "call_minutes",
            "quantity": "2.5",
            "at": day1,
            "attributes": {"direction": "inbound"},
        },
        {"tenant": "agent-b", "meter": "emails", "quantity": 1, "at": day1},
    )
    first = rollup(days=[day1.date()])
    rows = billing_table()
    second = rollup(days=[day1.date()])
    assert billing_table() == rows
    assert first.rows_written == second.rows_written == len(rows)
    # Every ancestor holds its subtree total.
    assert {r[0] for r in rows if r[1] == "call_minutes"} == {
        "agent-a",
        "org-a",
        "reseller-a",
        "partner-p",
    }


def test_crash_mid_rollup_leaves_previous_rows_and_next_run_repairs(world, day1_day2, monkeypatch):
    day1, day2 = day1_day2
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2},
    )
    rollup()
    before = billing_table()
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1 + timedelta(hours=1)},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2 + timedelta(hours=1)},
    )
    with monkeypatch.context() as patch:
        crash_writing(patch, day2.date())
        with pytest.raises(RuntimeError):
            rollup()
    failed = RollupRun.objects.first()
    assert failed.status == "failed" and "simulated crash" in failed.error
    # The day it did not reach keeps its previous rows; numbers stay right meanwhile.
    day2_rows = [r for r in billing_table() if r[2] == day2.date()]
    assert day2_rows == [r for r in before if r[2] == day2.date()]
    for tenant in (world.agent_a, world.reseller_a):
        got = summary_as_dict(usage_summary(tenant, day1.date(), day2.date(), "day"))
        assert got == brute_force(tenant, day1.date(), day2.date(), "day")
    rollup()
    assert [r[-1] for r in billing_table() if r[0] == "agent-a"] == [2, 2]


def test_late_event_is_visible_before_the_next_rollup(world, day1_day2):
    day1, _ = day1_day2
    send(
        {
            "tenant": "agent-a",
            "meter": "call_minutes",
            "quantity": "10",
            "at": day1,
            "attributes": {"direction": "inbound"},
        }
    )
    rollup()
    send(
        {
            "tenant": "agent-a",
            "meter": "call_minutes",
            "quantity": "-3",
            "at": day1,
            "attributes": {"direction": "inbound", "reason": "billing dispute"},
        }
    )
    [row] = usage_summary(world.reseller_a, day1.date(), day1.date()).rows
    assert row.quantity == Decimal("7") and row.event_count == 2
    run = rollup()
    assert run.days_recomputed == 1  # the late event's day, and only it
    [row] = usage_summary(world.reseller_a, day1.date(), day1.date()).rows
    assert row.quantity == Decimal("7")


def test_todays_usage_is_visible_at_once(world):
    rollup()
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1})
    today = timezone.now().date()
    [row] = usage_summary(world.partner, today, today).rows
    assert row.quantity == 1


def test_admin_drag_move_shifts_ancestors_history(world, users, login, day1_day2):
    day1, _ = day1_day2
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1})
    rollup()
    login(users["superuser"]).post(
        "/admin/accounts/tenant/",
        {
            "cmd": "move_node",
            "cut_item": world.org_a.pk,
            "pasted_on": world.reseller_b.pk,
            "position": "last-child",
        },
    )
    assert Tenant.objects.get(pk=world.org_a.pk).parent_id == world.reseller_b.pk
    totals = dict(DailyUsage.objects.values_list("tenant__slug", "event_count"))
    assert totals == {"agent-a": 1, "org-a": 1, "reseller-b": 1}
    fresh = billing_table()
    rollup(days=[day1.date()])
    assert billing_table() == fresh  # the same rows a full recomputation gives


def test_rollup_command_and_run_record(world, capsys, day1_day2):
    day1, _ = day1_day2
    a_minute_ago = timezone.now() - timedelta(minutes=1)
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1}, now=a_minute_ago)
    call_command("rollup", "--all", "--no-progress")
    assert "Rollup success: 1 day(s), 1 events" in capsys.readouterr().out
    run = RollupRun.objects.first()
    assert run.window_start == run.window_end == day1.date() and run.trigger == "command"
    call_command("rollup", "--since", str(day1.date()), "--no-progress")
    days = (timezone.now().date() - day1.date()).days + 1
    assert f"Rollup success: {days} day(s)" in capsys.readouterr().out


def test_moving_a_whole_organization_between_trees(db, day1_day2):
    day1, _ = day1_day2
    left, right = make_tenant("reseller"), make_tenant("reseller")
    org = make_tenant("organization", left)
    agent = make_tenant("agent", org)
    send({"tenant": agent.slug, "meter": "emails", "quantity": 1, "at": day1})
    rollup()
    org.parent = right
    org.save()
    assert usage_summary(left, day1.date(), day1.date()).rows == []
    [row] = usage_summary(right, day1.date(), day1.date()).rows
    assert row.event_count == 1


def test_distinct_counts_over_the_period_and_by_source(world, day1_day2):
    day1, day2 = day1_day2
    login = {"meter": "active_users"}
    send(
        {**login, "tenant": "org-a", "quantity": 1, "at": day1, "attributes": {"user_id": "u1"}},
        {
            **login,
            "tenant": "org-a",
            "quantity": 1,
            "at": day2,
            "attributes": {"user_id": "u1"},
            "source": "user",
        },
        {**login, "tenant": "org-a", "quantity": 1, "at": day2, "attributes": {"user_id": "u2"}},
        {**login, "tenant": "org-b", "quantity": 1, "at": day2, "attributes": {"user_id": "u1"}},
    )
    for stage in ("raw", "rolled up"):
        for tenant, expected in ((world.partner, 2), (world.reseller_a, 2), (world.org_a, 2)):
            [row] = usage_summary(tenant, day1.date(), day2.date()).rows
            assert (row.quantity, row.event_count) == (expected, 3), (stage, tenant.slug)
        api_only = usage_summary(
            world.org_a, day1.date(), day2.date(), filters=UsageFilters(source="api")
        ).rows
        assert [(r.quantity, r.event_count) for r in api_only] == [(2, 2)], stage
        by_day = {
            r.key: r.quantity
            for r in usage_summary(world.org_a, day1.date(), day2.date(), "day").rows
        }
        assert by_day == {day1.date(): 1, day2.date(): 2}, stage
        rollup()


def test_crash_in_a_later_transaction_keeps_the_days_already_committed(
    world, day1_day2, monkeypatch
):
    day1, day2 = day1_day2
    monkeypatch.setattr(RollupBatch, "ROWS_PER_TRANSACTION", 1)  # one day per transaction
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2},
    )
    rollup()
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1 + timedelta(hours=1)},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2 + timedelta(hours=1)},
    )
    with monkeypatch.context() as patch:
        crash_writing(patch, day2.date())
        with pytest.raises(RuntimeError):
            rollup()
    # Day 1 was committed with its watermark, day 2 kept its previous rows.
    assert [r[-1] for r in billing_table() if r[0] == "agent-a"] == [2, 1]
    assert (
        RolledDay.objects.get(day=day1.date()).watermark
        > RolledDay.objects.get(day=day2.date()).watermark
    )
    for tenant in (world.agent_a, world.partner):
        got = summary_as_dict(usage_summary(tenant, day1.date(), day2.date(), "day"))
        assert got == brute_force(tenant, day1.date(), day2.date(), "day")
    rollup()
    assert [r[-1] for r in billing_table() if r[0] == "agent-a"] == [2, 2]


def test_recomputing_rewrites_only_rows_that_differ(world, day1_day2):
    day1, _ = day1_day2
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "agent-b", "meter": "emails", "quantity": 1, "at": day1},
    )
    rollup()
    ids = dict(DailyUsage.objects.values_list("tenant__slug", "id"))
    stray = DailyUsage.objects.create(
        tenant=world.org_b, meter=Meter.objects.get(code="chat_sessions"), day=day1.date(),
        source="api", quantity=5, event_count=5,
    )  # fmt: skip
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1})
    run = rollup(days=[day1.date()])
    assert not DailyUsage.objects.filter(pk=stray.pk).exists()  # the whole day is recomputed
    after = {slug: (pk, n) for slug, pk, n in DailyUsage.objects.values_list(
        "tenant__slug", "id", "event_count")}  # fmt: skip
    assert after["agent-b"] == (ids["agent-b"], 1)  # unchanged: not rewritten
    assert after["agent-a"] == (ids["agent-a"], 2)  # changed: updated in place
    assert after["partner-p"] == (ids["partner-p"], 2)  # agent-b is in another tree
    assert run.rows_written == len(after)


def test_rollup_of_some_days_leaves_the_others(world, day1_day2):
    day1, day2 = day1_day2
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2},
    )
    run = rollup(days=[day2.date()])
    assert {r[2] for r in billing_table()} == {day2.date()}
    assert run.events_read == 1
    rollup(days=[day1.date()])
    assert {r[2] for r in billing_table()} == {day1.date(), day2.date()}


def test_a_rollup_of_chosen_days_leaves_the_other_days_new_events_counted(world, day1_day2):
    """`rollup --day` while another day has new events: those stay in the tail
    (the run does not move the watermark past them) and the next run rolls them up."""
    day1, day2 = day1_day2
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2},
    )
    agent = Tenant.objects.get(slug="agent-a")
    before = summary_as_dict(usage_summary(agent, day1.date(), day2.date()))
    assert before[("emails", None)] == (Decimal(2), 2)
    call_command("rollup", "--day", str(day2.date()), "--no-progress", "--grace", "0")
    assert RollupRun.objects.watermark() == 0
    assert {r[2] for r in billing_table()} == {day2.date()}
    assert summary_as_dict(usage_summary(agent, day1.date(), day2.date())) == before
    run = rollup()
    assert {r[2] for r in billing_table()} == {day1.date(), day2.date()}
    assert RollupRun.objects.watermark() == run.watermark > 0
    assert summary_as_dict(usage_summary(agent, day1.date(), day2.date())) == before


def test_a_rollup_of_chosen_days_that_hold_every_new_event_moves_the_watermark(world, day1_day2):
    day1, day2 = day1_day2
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day2},
    )
    top = current_watermark(grace=timedelta(0))
    assert rollup(days=[day2.date(), day1.date()]).watermark == top
    assert RollupRun.objects.watermark() == top
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1})
    # Holding the new event's day among others: read, then moved.
    assert rollup(days=[day1.date()]).watermark == current_watermark(grace=timedelta(0))
    for tenant in (world.partner, world.agent_a):
        got = summary_as_dict(usage_summary(tenant, day1.date(), day2.date(), "day"))
        assert got == brute_force(tenant, day1.date(), day2.date(), "day")
        assert sum(n for _, n in got.values()) == 3


def test_tail_by_child_goes_to_each_members_child(world, day1_day2):
    """Grouped by child, the tail is summed into the children in SQL: an agent three
    levels below the partner counts for its reseller, the partner's own events for
    the partner, a child without events shows zeros; distinct counts keep one pair
    per member and value. The same before a rollup and as a tail over rolled-up days."""
    make_tenant("reseller", world.partner, slug="reseller-c")
    day1, _ = day1_day2
    login = {"meter": "active_users", "quantity": 1, "at": day1, "attributes": {"user_id": "u1"}}
    batch = (
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "org-a", "meter": "emails", "quantity": 1, "at": day1},
        {"tenant": "partner-p", "meter": "emails", "quantity": 1, "at": day1},
        {**login, "tenant": "agent-a"},
        {**login, "tenant": "org-a"},
    )
    for rounds, stage in ((1, "raw"), (2, "tail over a rolled-up day")):
        if rounds == 2:
            rollup()
        send(*batch)
        rows = usage_summary(world.partner, day1.date(), day1.date(), "child").rows
        by_child = {(r.key.slug, r.meter.code): (r.quantity, r.event_count) for r in rows}
        assert by_child == {
            ("partner-p", "emails"): (rounds, rounds),
            ("reseller-a", "emails"): (2 * rounds, 2 * rounds),
            ("reseller-c", "emails"): (0, 0),
            ("reseller-a", "active_users"): (2, 2 * rounds),
            ("reseller-c", "active_users"): (0, 0),
        }, stage


def test_a_new_day_is_written_in_one_statement_as_a_recomputation_writes_it(
    world, day1_day2, latest_meter
):
    """The day ingestion just filled (no rows yet) is summed and inserted by one
    statement, without work tables: the same rows, row count and event count as
    recomputing the day through them, for every aggregation, in a bounded number
    of queries."""
    day1, day2 = day1_day2
    send(
        {"tenant": "agent-a", "meter": "call_minutes", "quantity": "2.5", "at": day1,
         "attributes": {"direction": "inbound"}},
        {"tenant": "org-a", "meter": "emails", "quantity": 1, "at": day2},
        {"tenant": "agent-b", "meter": "storage_units", "quantity": "7", "at": day2,
         "attributes": {"tier": "hot"}},
        {"tenant": "agent-a", "meter": "queue_depth", "quantity": "3", "at": day2,
         "attributes": {"queue": "a"}},
        {"tenant": "org-b", "meter": "active_users", "quantity": 1, "at": day2,
         "attributes": {"user_id": "u1"}},
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        direct = rollup()
    # (The ClickHouse store stages its one read of the days in a table of its own,
    # and keeps its batches and keys in two more: a few statements, however many
    # tenants and events.)
    own = ("ch_member_values", '"metering_eventbatch"', '"metering_eventkey"')
    statements = [
        q["sql"].split()[0].upper()
        for q in queries.captured_queries
        if not any(table in q["sql"] for table in own)
    ]
    assert "CREATE" not in statements and "DROP" not in statements
    # However many tenants and events (on PostgreSQL one of them forgets the day
    # log's rows of the last run, another checks that its trigger fires).
    assert len(statements) <= 26, len(statements)
    rows = billing_table()
    recomputed = rollup(days=[day1.date(), day2.date()])
    assert billing_table() == rows
    assert (direct.days_recomputed, direct.rows_written, direct.events_read) == (
        recomputed.days_recomputed, recomputed.rows_written, recomputed.events_read,
    ) == (2, len(rows), 5)  # fmt: skip
    for tenant in (world.partner, world.org_a, world.reseller_b):
        got = summary_as_dict(usage_summary(tenant, day1.date(), day2.date(), "day"))
        assert got == brute_force(tenant, day1.date(), day2.date(), "day")


def test_a_day_that_has_rows_is_not_written_as_a_new_day(world, day1_day2):
    """Another run may write the day between the plan and the write: the new-day
    statement then writes nothing and the days are recomputed as usual."""
    day1, _ = day1_day2
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1})
    rollup(days=[day1.date()])
    rows = billing_table()
    watermark = current_watermark(grace=timedelta(0))
    assert roll_up_new_days([day1.date()], watermark, PhaseClock()) is None
    assert billing_table() == rows
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1})
    assert rollup().events_read == 2
    assert [r[-1] for r in billing_table() if r[0] == "agent-a"] == [2]


def test_many_new_events_are_read_outside_the_write_transaction(world, day1_day2, monkeypatch):
    monkeypatch.setattr(rollup_module, "NEW_DAYS_EVENTS", 1)
    day1, _ = day1_day2
    send(*[{"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1}] * 2)
    with CaptureQueriesContext(connection) as queries:
        run = rollup()
    assert any(q["sql"].startswith("CREATE TEMPORARY TABLE") for q in queries.captured_queries)
    assert (run.days_recomputed, run.events_read) == (1, 2)


def test_new_events_are_counted_per_utc_day_on_one_day_or_several(world):
    """The dirty days and their counts: one day's events (read by their bounds),
    events across midnight UTC (read per day), and none."""
    from datetime import UTC, datetime

    from billing.usage.runs import events_by_day
    from metering.stores import event_store

    yesterday = timezone.now().date() - timedelta(days=1)
    late = datetime.combine(yesterday, datetime.min.time(), tzinfo=UTC) + timedelta(hours=23)
    before = event_store().top()
    assert events_by_day(before, before) == {}
    send(*[{"tenant": "agent-a", "meter": "emails", "quantity": 1,
            "at": late + timedelta(minutes=m)} for m in (0, 30, 59)])  # fmt: skip
    one_day = event_store().top()
    assert events_by_day(before, one_day) == {yesterday: 3}
    send({"tenant": "agent-b", "meter": "emails", "quantity": 1, "at": late + timedelta(hours=1)})
    assert events_by_day(before, event_store().top()) == {
        yesterday: 3,
        yesterday + timedelta(days=1): 1,
    }
    assert events_by_day(one_day, event_store().top()) == {yesterday + timedelta(days=1): 1}


@pytest.mark.skipif(
    settings.USAGE_EVENT_STORE != "clickhouse", reason="the ClickHouse store's distinct read"
)
def test_distinct_values_are_read_from_clickhouse_only_for_days_that_have_them(
    world, day1_day2, monkeypatch
):
    from billing.usage import clickhouse_reads

    read_days = []
    distinct_tuples = clickhouse_reads.distinct_tuples

    def counted(day, *args):
        read_days.append(day)
        return distinct_tuples(day, *args)

    monkeypatch.setattr(clickhouse_reads, "distinct_tuples", counted)
    day1, day2 = day1_day2
    login = {"meter": "active_users", "quantity": 1, "attributes": {"user_id": "u1"}}
    send(
        {"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1},
        {**login, "tenant": "agent-a", "at": day2},
        {**login, "tenant": "org-a", "at": day2},
    )
    rollup()
    assert read_days == [day2.date()]
    for tenant in (world.partner, world.org_a):
        got = summary_as_dict(usage_summary(tenant, day1.date(), day2.date()))
        assert got == brute_force(tenant, day1.date(), day2.date())


@pytest.mark.skipif(
    settings.USAGE_EVENT_STORE != "clickhouse", reason="the ClickHouse store's reads"
)
def test_a_clickhouse_rollup_does_not_read_every_event_for_the_span(world, day1_day2, monkeypatch):
    """The span of all stored events (a read of the whole table) only decides a
    relational read's bounds; the ClickHouse read bounds its days whatever."""
    from billing.usage import clickhouse_reads

    def whole_table(*args):
        raise AssertionError("read the span of every event")

    monkeypatch.setattr(clickhouse_reads, "event_span", whole_table)
    monkeypatch.setattr(rollup_module, "NEW_DAYS_EVENTS", 0)  # the work tables' path
    day1, _ = day1_day2
    send({"tenant": "agent-a", "meter": "emails", "quantity": 1, "at": day1})
    assert rollup().days_recomputed == 1
    assert summary_as_dict(usage_summary(world.agent_a, day1.date(), day1.date())) == brute_force(
        world.agent_a, day1.date(), day1.date()
    )
