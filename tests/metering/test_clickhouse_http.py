"""The ClickHouse event store against a real server over HTTP, the way production
runs it (asynchronous inserts, deduplication tokens, mutations, FINAL reads).

Opt-in: set CLICKHOUSE_TEST_URL to a server the tests may create and drop
databases on, e.g. `http://default:@127.0.0.1:8123/`. Each test gets a database
of its own, dropped afterwards. Skipped when it is unset."""

import os
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
from django.core.management import call_command
from django.utils import timezone

from billing.usage.rollup import run_rollup
from metering.models import EventBatch
from tests.billing.oracle import brute_force
from tests.metering.test_clickhouse_store import calls, calls_used, send
from tests.stored import stored_events

TEST_URL = os.environ.get("CLICKHOUSE_TEST_URL", "")

pytestmark = pytest.mark.skipif(
    not TEST_URL.startswith(("http://", "https://")),
    reason="set CLICKHOUSE_TEST_URL=http(s)://user:password@host:port/ to test a server",
)


@pytest.fixture
def server_store(settings):
    """The event store on the test server, in a database of this test's own."""
    from metering.clickhouse import client
    from metering.clickhouse.schema import migrate

    name = f"usage_portal_test_{uuid4().hex[:10]}"
    parts = urlsplit(TEST_URL)
    settings.USAGE_EVENT_STORE = "clickhouse"
    settings.CLICKHOUSE_URL = urlunsplit(parts._replace(path=f"/{name}"))
    migrate(report=lambda line: None)
    yield name
    client.command(f"DROP DATABASE IF EXISTS {name}")


def test_the_schema_is_applied_once(server_store, capsys):
    from metering.clickhouse import client

    call_command("ch_migrate")
    assert "up to date" in capsys.readouterr().out
    tables = client.rows(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": server_store},
    )
    assert ("usage_events", "ReplacingMergeTree") in tables


def test_batches_are_stored_once_and_duplicates_answered(world, server_store):
    assert send(calls(5)).accepted == 5
    result = send(calls(7))
    assert (result.accepted, result.duplicates) == (2, 5)
    assert sorted(e.event_id for e in stored_events()) == [f"c-{i}" for i in range(7)]
    assert set(EventBatch.objects.values_list("state", flat=True)) == {"committed"}


def test_a_retried_asynchronous_insert_is_stored_once(world, server_store):
    from metering.clickhouse import client, events_table
    from metering.models import Meter
    from metering.stores.clickhouse import COLUMNS, insert_settings

    now = timezone.now()
    row = [[world.agent_a.pk, "x-1", Meter.objects.get(code="emails").pk, Decimal("1"), now, now,
            "api", "", "{}", 10**9, 0]]  # fmt: skip
    once = insert_settings(10**9)
    assert once["async_insert"] == 1 and once["wait_for_async_insert"] == 1
    client.insert(events_table(), row, COLUMNS, settings=once)
    client.insert(events_table(), row, COLUMNS, settings=once)  # the client retrying
    assert client.rows(f"SELECT count() FROM {events_table()} WHERE event_id = 'x-1'") == [(1,)]


def test_an_aborted_batch_is_purged_and_the_numbers_hold(world, server_store, monkeypatch):
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
    assert {e.event_id for e in stored_events()} == {"ok-0", "ok-1"}
    assert store.purge_abandoned() == 1  # an ALTER … DELETE, waited for
    assert send(calls(3, prefix="lost")).accepted == 3
    run_rollup(grace=timedelta(0))
    today = timezone.now().date()
    assert calls_used(world) == brute_force(world.agent_a, today - timedelta(days=2), today)


def test_the_records_api_reads_the_server(world, users, api, server_store):
    send(calls(3))
    response = api(users["manager_a"]).get("/api/v1/events/", {"tenant": "agent-a"})
    assert response.status_code == 200, response.content
    assert sorted(row["event_id"] for row in response.json()["results"]) == ["c-0", "c-1", "c-2"]
    other = api(users["manager_b"]).get("/api/v1/events/", {"tenant": "agent-a"})
    assert other.status_code == 404
