"""Lists over the event table must cost a page, not the table: what a timing on a
shared machine cannot guard, the queries and their plans can.

- The admin's events changelist counts no further than a few pages past the one
  shown and draws its date drill-down from two rows, never every event.
- A subtree's events are matched in the form that lets a newest-first list walk
  the time index (many events) or read the subtree's own (few), always the rows
  of the subtree rule.
"""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import subtrees_q
from metering.models import Meter, UsageEvent, UsageEventQuerySet
from tests.factories import make_tenant, make_user
from tests.stored import relational_only

pytestmark = relational_only("lists and plans over the relational event table")

CHANGELIST = "/admin/metering/usageevent/"
EVENTS = 4_000
# Meters of three categories, none of them Licenses.
SENT = ["call_minutes", "processing_units", "storage_units"]


def add_events(world, count: int, meters=None):
    """`count` events a minute apart over both resellers (and over `meters`, by default
    every active meter), analyzed; returns the newest time."""
    now = timezone.now()
    meters = list(Meter.objects.filter(is_active=True) if meters is None else meters)
    tenants = [world.agent_a, world.org_a, world.agent_b, world.org_b, world.reseller_b]
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                event_id=f"l-{n}",
                tenant=tenants[n % len(tenants)],
                meter=meters[n % len(meters)],
                quantity=Decimal(1),
                occurred_at=now - timedelta(minutes=n),
                source=("api", "user", "service")[n % 3],
            )
            for n in range(count)
        ],
        batch_size=2_000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return now


@pytest.fixture
def events(world):
    return add_events(world, EVENTS)


@pytest.fixture
def many_at(monkeypatch):
    """Subtrees count as holding many events from `FEW_AT_LEAST` events on."""

    def set_threshold(events: int):
        monkeypatch.setattr(UsageEventQuerySet, "FEW_AT_LEAST", events)
        monkeypatch.setattr(UsageEventQuerySet, "FEW", 0)

    return set_threshold


def event_queries(client, url) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [q["sql"] for q in captured.captured_queries if "metering_usageevent" in q["sql"]]


@pytest.mark.parametrize("who", ["superuser", "manager_a"])
@pytest.mark.parametrize(
    "query", ["", "?source__exact=api", "?category=communications", "?q=org-a"]
)
def test_the_events_changelist_counts_no_further_than_its_reach(events, users, login, who, query):
    for sql in event_queries(login(users[who]), CHANGELIST + query):
        if "COUNT(" in sql:
            # Only ever a count of a LIMITed subquery: the list's reach (100 rows a
            # page, ten pages ahead), or how many events a subtree holds, up to a few.
            assert re.search(r"LIMIT \d+\) subquery$", sql), sql
        # The date drill-down reads the first and last event, not every event's date.
        assert "DISTINCT" not in sql, sql
        assert 'MIN("metering_usageevent"."occurred_at")' not in sql, sql


def test_a_list_longer_than_the_reach_says_more_than(events, users, login, monkeypatch):
    from metering.admin import UsageEventAdmin

    monkeypatch.setattr(UsageEventAdmin, "list_per_page", 100)
    client = login(users["superuser"])
    first = client.get(CHANGELIST)
    assert first.context["cl"].paginator.more
    assert "More than 1100 usage events" in first.content.decode()
    assert "Select all 1100" not in first.content.decode()  # 1,100 would not be all
    # Each page reaches ten pages further; the list's end shows the exact count.
    assert client.get(CHANGELIST + "?p=21").context["cl"].result_count == 3100
    last = client.get(CHANGELIST + "?p=35")
    assert not last.context["cl"].paginator.more
    assert f"{EVENTS} usage events" in last.content.decode()


def test_a_short_list_keeps_its_exact_count(events, users, login):
    response = login(users["superuser"]).get(CHANGELIST + "?q=l-7")
    assert response.context["cl"].result_count == 1
    assert "1 result" in response.content.decode()


def test_the_date_drill_down_offers_every_day_between_the_first_and_last(world, users, login):
    meter = Meter.objects.get(code="emails")
    first = timezone.now().replace(day=3, hour=12)
    for n, days in enumerate((0, 4)):
        UsageEvent.objects.create(
            event_id=f"d-{n}",
            tenant=world.agent_a,
            meter=meter,
            quantity=1,
            occurred_at=first + timedelta(days=days),
        )
    with CaptureQueriesContext(connection) as captured:
        page = login(users["manager_a"]).get(CHANGELIST).content.decode()
    days = sorted({int(d) for d in re.findall(r"occurred_at__day=(\d+)", page)})
    assert days == [3, 4, 5, 6, 7]  # every day between the two, as links
    assert not any("DISTINCT" in q["sql"] for q in captured.captured_queries)


def test_the_events_list_is_newest_first(events, users, login):
    listed = login(users["manager_a"]).get(CHANGELIST).context["cl"].result_list
    times = [e.occurred_at for e in listed]
    assert times == sorted(times, reverse=True)


def test_search_finds_an_event_id_or_a_tenant_subtree_within_scope(events, users, login):
    client = login(users["manager_a"])
    found = client.get(CHANGELIST + "?q=l-0").context["cl"].result_list
    assert [e.event_id for e in found] == ["l-0"]  # agent-a's
    assert list(client.get(CHANGELIST + "?q=l-2").context["cl"].result_list) == []  # agent-b's
    subtree = client.get(CHANGELIST + "?q=org-a").context["cl"].result_list
    assert {e.tenant.slug for e in subtree} == {"org-a", "agent-a"}
    assert list(client.get(CHANGELIST + "?q=org-b").context["cl"].result_list) == []


@pytest.mark.parametrize("threshold", [1, 10**9], ids=["many", "few"])
def test_subtree_events_are_those_of_the_subtree_rule(events, world, users, many_at, threshold):
    many_at(threshold)
    for root in (world.partner, world.reseller_a, world.org_a, world.agent_a, world.reseller_b):
        joined = UsageEvent.objects.filter(subtrees_q([root], "tenant__"))
        assert set(UsageEvent.objects.within(root)) == set(joined)
    extra = make_user("two-roots", world.org_a, "viewer")
    extra.memberships.create(tenant=world.org_b)
    every = list(UsageEvent.objects.select_related("tenant"))
    for user in (users["manager_a"], users["manager_b"], users["superuser"], extra):
        roots = [m.tenant for m in user.memberships.select_related("tenant")]
        assert set(UsageEvent.objects.visible_to(user)) == {
            e for e in every if any(root.contains(e.tenant) for root in roots)
            or user.is_superuser
        }  # fmt: skip
    assert not UsageEvent.objects.visible_to(users["nobody"]).exists()


def plan_reads_sqlite(sql: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [row[-1] for row in cursor.fetchall()]


def event_reads_postgresql(sql: str) -> list[str]:
    """How each read of the event table goes (an index name, or the node type), and
    any Sort node above it."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        value = cursor.fetchone()[0]
    plan = (json.loads(value) if isinstance(value, str) else value)[0]["Plan"]
    reads, pending = [], [plan]
    while pending:
        node = pending.pop()
        if node.get("Relation Name") == "metering_usageevent":
            reads.append(node.get("Index Name", node["Node Type"]))
        elif node["Node Type"] == "Sort":
            reads.append("Sort")
        pending += node.get("Plans", [])
    return reads


def page_sql(client, query: str = "") -> str:
    listed = 'ORDER BY "metering_usageevent"."occurred_at" DESC, "metering_usageevent"."id" DESC'
    [sql] = [s for s in event_queries(client, CHANGELIST + query) if listed in s]
    return sql


def test_a_large_subtree_walks_the_time_index_newest_first(world, users, login, many_at):
    # Enough events that reading a page is cheaper than reading them all (as the
    # PostgreSQL planner weighs it); reseller A holds 8,000 of them.
    add_events(world, 20_000)
    many_at(1_000)
    sql = page_sql(login(users["manager_a"]))
    if connection.vendor == "sqlite":
        steps = plan_reads_sqlite(sql)
        assert "SCAN metering_usageevent USING INDEX event_time" in steps, steps
        assert not any("TEMP B-TREE" in step for step in steps), steps
    else:
        assert event_reads_postgresql(sql) == ["event_time"]


def test_a_small_subtree_leaves_its_tenants_index_to_the_planner(events, world, login):
    agent = make_tenant("agent", world.org_a, slug="agent-a2")
    meter = Meter.objects.get(code="emails")
    for n in range(5):
        UsageEvent.objects.create(
            event_id=f"s-{n}", tenant=agent, meter=meter, quantity=1, occurred_at=events
        )
    owner = make_user("agent-owner", agent, "manager", is_staff=True)
    sql = page_sql(login(owner))
    assert '"metering_usageevent"."tenant_id" IN (SELECT' in sql and "(+" not in sql
    assert {e.event_id for e in login(owner).get(CHANGELIST).context["cl"].result_list} == {
        f"s-{n}" for n in range(5)
    }


@pytest.mark.parametrize(
    ("url", "params"),
    [
        ("/api/v1/events/", {"category": "licenses"}),
        ("/api/v1/events/", {"meter": "portals"}),
        (CHANGELIST, {"category": "licenses"}),
    ],
)
def test_meter_filters_name_the_meters_ids_not_a_join(world, users, api, login, url, params):
    """Through a join the planner guesses how many events a meter has; with the ids it
    knows (a meter nobody sends: none), so a filter matching nothing stays instant."""
    client = api(users["manager_a"]) if url.startswith("/api/") else login(users["superuser"])
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params).status_code == 200
    event_reads = [
        q["sql"]
        for q in queries
        if 'FROM "metering_usageevent"' in q["sql"] and " WHERE " in q["sql"]
    ]
    assert event_reads, "the list read the events"
    wheres = [sql.split(" WHERE ", 1)[-1].split(" ORDER BY ")[0] for sql in event_reads]
    assert not [w for w in wheres if '"metering_meter"' in w]
    assert any('"metering_usageevent"."meter_id" IN' in w for w in wheres)


# The statistics of the benchmark's database (bench/lists.py): 10M events of six
# meters, 667 tenants in one tree. SQLite weighs a plan by them, not by the rows there are.
TEN_MILLION = {
    "metering_usageevent": {
        "event_time": "10000000 3",
        "event_received": "10000000 3",
        "event_meter_time": "10000000 1666667 3",
        "event_tenant_time": "10000000 16667 1",
        "sqlite_autoindex_metering_usageevent_1": "10000000 16667 1",  # (tenant, event_id)
    },
    "accounts_tenant": {
        "accounts_tenant_parent_id_d013f124": "667 10",
        "accounts_tenant_tree_id_26ba87ad": "667 667",
        "accounts_tenant_tree_id_lff209": "667 667 1",
        "sqlite_autoindex_accounts_tenant_1": "667 1",
        "sqlite_autoindex_accounts_tenant_2": "667 667",
    },
}


@pytest.fixture(params=["measured", "ten_million"])
def statistics(request):
    """Planner statistics as analyzed, or as at 10M events (SQLite)."""

    if request.param == "ten_million" and connection.vendor != "sqlite":
        pytest.skip("SQLite's statistics")

    def apply():
        if request.param == "measured":
            return
        with connection.cursor() as cursor:
            for table, indexes in TEN_MILLION.items():
                cursor.execute("SELECT idx FROM sqlite_stat1 WHERE tbl = %s", [table])
                assert {idx for (idx,) in cursor.fetchall()} == set(indexes)
                for index, stat in indexes.items():
                    update = "UPDATE sqlite_stat1 SET stat = %s WHERE idx = %s"
                    cursor.execute(update, [stat, index])
            cursor.execute("ANALYZE sqlite_schema")  # the planner reads them again

    return apply


@pytest.mark.parametrize("who", ["superuser", "manager_a"])
def test_several_meters_nobody_sends_are_read_through_their_index(
    world, users, login, many_at, statistics, who
):
    """SQLite's statistics give every meter the same share of the events: given the
    ids of several meters it walked the time index to fill a page, through every
    event when none of them had any (25 s at 10M for category = Licenses). Each
    meter's events are read through the (meter, occurred_at) index instead, also
    by the admin's list without a LIMIT (it fits on one page), which `unlikely()`
    left walking every event at 10M (86 s)."""
    assert Meter.objects.filter(category="licenses").count() > 1
    # Events of a few meters, as in the benchmark: each meter then holds a large share.
    add_events(world, 20_000, meters=Meter.objects.filter(code__in=SENT))
    many_at(1_000)
    statistics()
    sql = page_sql(login(users[who]), "?category=licenses")
    assert " LIMIT " not in sql  # nothing to list: the admin reads the list whole
    if connection.vendor == "sqlite":
        steps = plan_reads_sqlite(sql)
        assert any("event_meter_time (meter_id=?)" in step for step in steps), steps
        assert not any("INDEX event_time" in step for step in steps), steps
    else:
        assert "event_time" not in event_reads_postgresql(sql)


@pytest.mark.parametrize("who", ["superuser", "manager_a"])
@pytest.mark.parametrize("category", ["processing", "communications"])
def test_several_meters_with_many_events_walk_the_time_index(
    world, users, login, many_at, statistics, who, category
):
    """The other side of the hint above: told every event of a category's meters is
    a rare match, SQLite read them all through the meters' index and sorted them
    for a page (30 s at 10M for category = Processing, one of whose meters sends a
    fifth of the events). Meters holding many events walk the time index newest
    first and stop after a page, as one meter walks its own."""
    meters = Meter.objects.filter(category=category)
    assert meters.count() > 1 and meters.filter(code__in=SENT).exists()
    add_events(world, 20_000, meters=Meter.objects.filter(code__in=SENT))
    many_at(1_000)
    statistics()
    sql = page_sql(login(users[who]), f"?category={category}")
    if connection.vendor == "sqlite":
        steps = plan_reads_sqlite(sql)
        assert "SCAN metering_usageevent USING INDEX event_time" in steps, steps
        assert not any("TEMP B-TREE" in step for step in steps), steps
    else:
        assert "Sort" not in event_reads_postgresql(sql)
