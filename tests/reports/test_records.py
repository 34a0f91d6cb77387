"""Detailed records page: the raw telemetry of a subtree, filtered, paginated, as CSV."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from accounts.models import PlatformPrincipal
from metering.ingestion import ingest_events
from tests.reports.tables import html_table


def csv_rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_records_table_equals_csv(report_usage, users, login):
    client = login(users["manager_a"])
    page = client.get("/reports/t/org-a/records/").content.decode()
    table = html_table(page, "records-table")
    download = csv_rows(client.get("/reports/t/org-a/records/csv/"))
    assert table[0] == download[0] == [
        "Time (UTC)", "Tenant", "Meter", "Quantity", "Unit", "Source", "Dimension", "Event id",
        "Received (UTC)",
    ]  # fmt: skip
    assert len(table) == len(download) == 1 + 7  # agent-a's and org-a's events, no one else's
    for shown, exported in zip(table[1:], download[1:], strict=True):
        assert shown[1:3] + shown[4:-1] == exported[1:3] + exported[4:-1]
        assert Decimal(shown[3].replace(",", "")) == Decimal(exported[3])
        for time in (0, -1):  # occurred and received: to the second, with the offset in the CSV
            assert shown[time] == exported[time][:19].replace("T", " ")
    assert {r[1] for r in download[1:]} == {"Org A", "Agent A"}


def test_records_filters(report_usage, users, login):
    client = login(users["manager_a"])
    rows = csv_rows(client.get("/reports/t/reseller-a/records/csv/", {"meter": "call_minutes"}))
    assert sorted(r[3] for r in rows[1:]) == ["1.500000", "10.000000", "12.500000", "2.250000"]
    day = str(report_usage)
    rows = csv_rows(
        client.get(
            "/reports/t/agent-a/records/csv/", {"start": day, "end": day, "category": "processing"}
        )
    )
    assert [r[2:4] for r in rows[1:]] == [["processing_units", "1234.500000"]]
    page = client.get("/reports/t/reseller-a/records/", {"meter": "emails"}).content.decode()
    assert [r[2] for r in html_table(page, "records-table")[1:]] == ["emails"]


def test_records_are_paginated(world, users, login):
    at = datetime.now(UTC) - timedelta(minutes=5)
    ingest_events(
        [
            {"event_id": f"p{n}", "tenant": "agent-a", "meter": "emails", "quantity": "1",
             "timestamp": (at - timedelta(seconds=n)).isoformat()}
            for n in range(130)
        ],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    client = login(users["manager_a"])
    first = client.get("/reports/t/agent-a/records/").content.decode()
    assert len(html_table(first, "records-table")) == 1 + 100
    second = client.get("/reports/t/agent-a/records/", {"page": 2}).content.decode()
    assert len(html_table(second, "records-table")) == 1 + 30
    assert len(csv_rows(client.get("/reports/t/agent-a/records/csv/"))) == 1 + 130


def test_records_reject_bad_filters(report_usage, users, login):
    response = login(users["manager_a"]).get("/reports/t/org-a/records/", {"start": "nonsense"})
    assert response.status_code == 400


def test_records_csv_follows_the_table_sort(report_usage, users, login):
    client = login(users["manager_a"])
    params = {"sort": "quantity", "meter": "call_minutes"}
    page = client.get("/reports/t/reseller-a/records/", params).content.decode()
    shown = [r[3] for r in html_table(page, "records-table")[1:]]
    exported = [
        r[3] for r in csv_rows(client.get("/reports/t/reseller-a/records/csv/", params))[1:]
    ]
    assert exported == ["1.500000", "2.250000", "10.000000", "12.500000"]
    assert [Decimal(q.replace(",", "")) for q in shown] == [Decimal(q) for q in exported]
