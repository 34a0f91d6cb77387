"""Detailed records page: the raw telemetry of a subtree, filtered, paginated, as CSV."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.conf import settings

from accounts.models import PlatformPrincipal
from metering.ingestion import ingest_events
from reports.filtersets import RecordsFilterSet
from reports.selectors import tenant_paths
from tests.factories import make_tenant
from tests.reports.tables import html_table


def csv_rows(response):
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_records_table_equals_csv(report_usage, users, login):
    client = login(users["manager_a"])
    page = client.get("/reports/t/org-a/records/").content.decode()
    table = html_table(page, "records-table")
    download = csv_rows(client.get("/reports/t/org-a/records/csv/"))
    assert table[0] == [
        "Time (UTC)", "Tenant", "Meter", "Quantity", "Unit", "Source", "Dimension", "Event id",
        "Received (UTC)",
    ]  # fmt: skip
    # The CSV is the table plus each tenant's slug, next to its path.
    assert download[0] == table[0][:2] + ["Tenant slug"] + table[0][2:]
    assert len(table) == len(download) == 1 + 7  # agent-a's and org-a's events, no one else's
    for shown, exported in zip(table[1:], download[1:], strict=True):
        del exported[2]
        assert shown[1:3] + shown[4:-1] == exported[1:3] + exported[4:-1]
        assert Decimal(shown[3].replace(",", "")) == Decimal(exported[3])
        for time in (0, -1):  # occurred and received: to the second, with the offset in the CSV
            assert shown[time] == exported[time][:19].replace("T", " ")
    assert {r[1] for r in download[1:]} == {"Org A", "Agent A"}


def test_records_filters(report_usage, users, login):
    client = login(users["manager_a"])
    rows = csv_rows(client.get("/reports/t/reseller-a/records/csv/", {"meter": "call_minutes"}))
    assert sorted(r[4] for r in rows[1:]) == ["1.500000", "10.000000", "12.500000", "2.250000"]
    day = str(report_usage)
    rows = csv_rows(
        client.get(
            "/reports/t/agent-a/records/csv/", {"start": day, "end": day, "category": "processing"}
        )
    )
    assert [r[3:5] for r in rows[1:]] == [["processing_units", "1234.500000"]]
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
        r[4] for r in csv_rows(client.get("/reports/t/reseller-a/records/csv/", params))[1:]
    ]
    assert exported == ["1.500000", "2.250000", "10.000000", "12.500000"]
    assert [Decimal(q.replace(",", "")) for q in shown] == [Decimal(q) for q in exported]


def test_tenant_reads_as_its_path_and_the_csv_adds_its_slug(report_usage, users, login, world):
    # An agent of the same name in another organization of the reseller.
    org_c = make_tenant("organization", world.reseller_a, slug="org-c", name="Org C")
    make_tenant("agent", org_c, slug="agent-c", name="Agent A")
    at = datetime.now(UTC) - timedelta(minutes=5)
    ingest_events(
        [{"event_id": "twin", "tenant": "agent-c", "meter": "emails", "quantity": "1",
          "timestamp": at.isoformat()}],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    client = login(users["manager_a"])
    params = {"meter": "emails"}
    page = client.get("/reports/t/reseller-a/records/", params).content.decode()
    assert sorted(r[1] for r in html_table(page, "records-table")[1:]) == [
        "Org A › Agent A",
        "Org C › Agent A",
    ]
    assert 'href="/reports/t/agent-c/">Org C › Agent A</a>' in page
    download = csv_rows(client.get("/reports/t/reseller-a/records/csv/", params))
    assert download[0][1:3] == ["Tenant", "Tenant slug"]
    assert sorted(r[1:3] for r in download[1:]) == [
        ["Org A › Agent A", "agent-a"],
        ["Org C › Agent A", "agent-c"],
    ]
    # One level down the path starts below the page's tenant; the tenant itself is its name.
    rows = csv_rows(client.get("/reports/t/org-a/records/csv/", {"meter": "call_minutes"}))
    assert {tuple(r[1:3]) for r in rows[1:]} == {("Agent A", "agent-a"), ("Org A", "org-a")}


def test_tenant_paths_in_one_query(world, django_assert_num_queries):
    make_tenant("agent", world.org_a, slug="agent-a2", name="Agent A2")
    with django_assert_num_queries(1):
        paths = tenant_paths(world.partner)
    assert paths[world.partner.pk] == "Partner P"
    assert paths[world.reseller_a.pk] == "Reseller A"
    assert paths[world.agent_a.pk] == "Reseller A › Org A › Agent A"
    assert world.agent_b.pk not in paths


def test_meter_filter_is_a_select_of_meter_names(report_usage, users, login):
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/records/").content.decode()
    select = page[page.index('<select name="meter"') :]
    select = select[: select.index("</select>")]
    assert '<option value="" selected>All meters</option>' in select
    assert '<optgroup label="Communications">' in select
    assert '<option value="call_minutes">Call minutes</option>' in select
    chosen = client.get("/reports/t/reseller-a/records/", {"meter": "emails"}).content.decode()
    assert '<option value="emails" selected>Emails</option>' in chosen
    assert [r[2] for r in html_table(chosen, "records-table")[1:]] == ["emails"]
    # A name typed into the URL is not a meter: said so, not an empty list.
    unknown = client.get("/reports/t/reseller-a/records/", {"meter": "Emails"})
    assert unknown.status_code == 400 and "Select a valid choice" in unknown.content.decode()


def test_from_and_until_are_date_pickers_that_state_their_format(report_usage, users, login):
    page = login(users["manager_a"]).get("/reports/t/reseller-a/records/").content.decode()
    for name, label in (("start", "From"), ("end", "Until (inclusive)")):
        field = page[page.rindex("<label", 0, page.index(f'name="{name}"')) :]
        field = field[: field.index("</label>")]
        assert field.startswith(f"<label>{label} ")
        assert 'type="date"' in field and "YYYY-MM-DD, UTC" in field


def test_pagination_says_how_many_records_match(world, users, login):
    at = datetime.now(UTC) - timedelta(minutes=5)
    ingest_events(
        [
            {"event_id": f"c{n}", "tenant": "agent-a", "meter": "emails", "quantity": "1",
             "timestamp": (at - timedelta(seconds=n)).isoformat()}
            for n in range(1234)
        ],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    client = login(users["manager_a"])

    def count_line(params) -> str:
        page = client.get("/reports/t/reseller-a/records/", params).content.decode()
        if 'id="records-count"' not in page:
            return ""  # nothing matches: the table says so
        line = page[page.index('id="records-count">') :]
        return line[line.index(">") + 1 : line.index("</p>")]

    assert count_line({}) == "1–100 of 1,234 records"
    assert count_line({"page": 13}) == "1,201–1,234 of 1,234 records"
    assert count_line({"meter": "emails", "start": "2020-01-01", "end": "2020-01-01"}) == ""
    assert count_line({"meter": "emails"}) == "1–100 of 1,234 records"


@pytest.mark.skipif(
    settings.USAGE_EVENT_STORE == "clickhouse", reason="ClickHouse counts every match at once"
)
def test_records_are_not_counted_past_the_limit_of_events_in_range(
    report_usage, users, login, monkeypatch
):
    monkeypatch.setattr(RecordsFilterSet, "count_limit", 6)
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/records/").content.decode()  # 7 events
    assert "1–7 (not counted: more than 6 records fall in these dates;" in page
    assert len(html_table(page, "records-table")) == 1 + 7  # still listed
    # Fewer days, fewer events to count: a total again, with the meter filter too.
    day = {"start": str(report_usage), "end": str(report_usage)}
    page = client.get("/reports/t/reseller-a/records/", day).content.decode()
    assert "1–6 of 6 records" in page
    page = client.get("/reports/t/reseller-a/records/", {**day, "meter": "emails"})
    assert "1–1 of 1 record<" in page.content.decode()


def test_tenant_sort_groups_each_organization_with_its_agents(report_usage, users, login, world):
    org_c = make_tenant("organization", world.reseller_a, slug="org-c", name="Org C")
    make_tenant("agent", org_c, slug="agent-c", name="Agent A")
    at = datetime.now(UTC) - timedelta(minutes=5)
    ingest_events(
        [{"event_id": f"s{n}", "tenant": slug, "meter": "emails", "quantity": "1",
          "timestamp": at.isoformat()} for n, slug in enumerate(["org-c", "agent-c"])],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    client = login(users["manager_a"])
    params = {"sort": "tenant"}
    page = client.get("/reports/t/reseller-a/records/", params).content.decode()
    shown = [r[1] for r in html_table(page, "records-table")[1:]]
    assert shown == ["Org A"] * 2 + ["Org A › Agent A"] * 5 + ["Org C", "Org C › Agent A"]
    exported = csv_rows(client.get("/reports/t/reseller-a/records/csv/", params))
    assert [r[1] for r in exported[1:]] == shown
    assert [r[0] for r in exported[1:3]] == sorted(r[0] for r in exported[1:3])  # then by time
