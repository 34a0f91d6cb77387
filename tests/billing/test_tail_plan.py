"""The real-time tail must cost what lies past the watermark, not what is stored.

A timing can't guard that on a shared machine; the query plan can. With a month
of events rolled up and the tables analyzed (as a database in use has its
statistics), the tail query must read the event table by its primary key range
(`id > watermark`), never walk the period's events by time, tenant or meter.
"""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.usage import usage_summary
from metering.models import Meter, UsageEvent
from tests.billing.conftest import rollup
from tests.stored import relational_only

pytestmark = relational_only("the relational event table's query plan")

EVENTS = 20_000


@pytest.fixture
def month_rolled_up(world):
    """A month of events over both resellers' agents, every meter kind, rolled up."""
    now = timezone.now()
    meters = list(Meter.objects.filter(is_active=True))
    tenants = [world.agent_a, world.agent_b, world.org_a, world.org_b]
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                event_id=f"m-{n}",
                tenant=tenants[n % len(tenants)],
                meter=meters[n % len(meters)],
                quantity=Decimal(n % 7 + 1),
                occurred_at=now - timedelta(minutes=n * 2 + 60),
                received_at=now - timedelta(minutes=n * 2 + 30),
                attributes={"user_id": f"u{n % 13}"},
            )
            for n in range(EVENTS)
        ],
        batch_size=2_000,
    )
    rollup()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return now


def tail_sql(world, now) -> str:
    start = (now - timedelta(days=29)).date()
    with CaptureQueriesContext(connection) as queries:
        usage_summary(world.partner, start, now.date(), "meter")
    [sql] = [q["sql"] for q in queries.captured_queries if "WITH tail AS" in q["sql"]]
    return sql


def event_scans_sqlite(sql: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        details = [row[-1] for row in cursor.fetchall()]
    return [d for d in details if d.startswith(("SCAN e", "SEARCH e"))]


def event_indexes_postgresql(sql: str) -> list[str]:
    """How each read of the event table goes: an index name, or the node type."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        value = cursor.fetchone()[0]
    plan = (json.loads(value) if isinstance(value, str) else value)[0]["Plan"]
    reads, pending = [], [plan]
    while pending:
        node = pending.pop()
        children = node.get("Plans", [])
        if node.get("Relation Name") == "metering_usageevent":
            bitmap = [c.get("Index Name") for c in children if "Index Name" in c]
            reads += bitmap or [node.get("Index Name", node["Node Type"])]
        pending += children
    return reads


def test_the_tail_is_read_by_the_primary_key_range(world, month_rolled_up):
    sql = tail_sql(world, month_rolled_up)
    if connection.vendor == "sqlite":
        assert event_scans_sqlite(sql) == ["SEARCH e USING INTEGER PRIMARY KEY (rowid>?)"]
    else:
        assert event_indexes_postgresql(sql) == ["metering_usageevent_pkey"]
