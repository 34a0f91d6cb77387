"""The database going away under ingestion gives a clear 503 and loses nothing:
the client resends the same event_ids and each event is stored exactly once."""

import sqlite3

import pytest
from django.db import connection

from metering.models import UsageEvent


def batch():
    return {
        "events": [
            {"event_id": f"fault-{n}", "tenant": "agent-a", "meter": "emails", "quantity": 1}
            for n in range(50)
        ]
    }


def assert_unavailable(response):
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    assert "Retry" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_locked_sqlite_answers_503_then_the_resend_is_stored_once(world, users, api):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's writer lock")
    client = api(users["manager_a"])
    connection.ensure_connection()
    connection.connection.execute("PRAGMA busy_timeout = 200")
    other = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    try:
        assert_unavailable(client.post("/api/v1/events/", batch(), format="json"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert UsageEvent.objects.count() == 0  # nothing half-written
    assert client.post("/api/v1/events/", batch(), format="json").json() == {
        "accepted": 50, "duplicates": 0,
    }  # fmt: skip
    assert client.post("/api/v1/events/", batch(), format="json").json()["duplicates"] == 50
    assert UsageEvent.objects.count() == 50


@pytest.mark.django_db(transaction=True)
def test_lost_postgresql_connection_answers_503_then_the_resend_is_stored_once(world, users, api):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL backend termination")
    import psycopg

    client = api(users["manager_a"])
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**{**params, "autocommit": True}) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # The server dropped this process's connection, as in a restart or failover.
    assert_unavailable(client.post("/api/v1/events/", batch(), format="json"))
    connection.close()  # what Django does at the next request's start
    resent = client.post("/api/v1/events/", batch(), format="json")
    assert resent.status_code == 201, resent.content
    assert resent.json()["accepted"] == 50
    assert client.post("/api/v1/events/", batch(), format="json").json()["duplicates"] == 50
    assert UsageEvent.objects.filter(event_id__startswith="fault-").count() == 50
