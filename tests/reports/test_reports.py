"""Report pages, chart JSON and CSV against the usage API: one set of numbers."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import make_tenant
from tests.reports.tables import html_table

COMMS = {"category": "communications"}


def csv_rows(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def number(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


def api_usage(api, user, **params) -> list[dict]:
    response = api(user).get("/api/v1/usage/", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.parametrize(
    ("user", "slug", "h1"),
    [
        ("partner", "partner-p", "Partner P"),
        ("manager_a", "reseller-a", "Reseller A"),
        ("manager_a", "org-a", "Org A"),
        ("org_a", "agent-a", "Agent A"),
    ],
)
def test_report_page_renders_at_every_level(report_usage, users, login, user, slug, h1):
    response = login(users[user]).get(f"/reports/t/{slug}/", COMMS)
    assert response.status_code == 200
    page = response.content.decode()
    assert f"<h1>{h1}" in page
    assert 'data-meter="call_minutes"' in page and 'id="usage-chart"' in page
    assert "Usage up to" in page and "last rollup" in page
    assert ('id="children-table"' in page) == (slug != "agent-a")


def test_cards_show_totals_and_change_against_previous_period(report_usage, users, login):
    page = login(users["manager_a"]).get("/reports/t/reseller-a/", COMMS).content.decode()
    card = page[page.index('data-meter="call_minutes"') :]
    card = card[: card.index("</article>")]
    assert ">16.25<" in card  # 12.5 + 2.25 + 1.5 this month
    assert "▲ 62.5%" in card  # against 10 in the period before
    emails = page[page.index('data-meter="chat_sessions"') :]
    assert "—" in emails[: emails.index("</article>")]


def test_default_category_and_period(report_usage, users, login):
    page = login(users["manager_a"]).get("/reports/t/reseller-a/").content.decode()
    assert 'data-meter="processing_units"' in page and 'data-meter="call_minutes"' not in page
    assert 'aria-current="page" class="active">Processing<' in page
    assert '<option value="this_month" selected>' in page


def test_children_csv_equals_table_equals_api(report_usage, users, login, api):
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/", COMMS).content.decode()
    table = html_table(page, "children-table")
    download = csv_rows(client.get("/reports/t/reseller-a/csv/", {**COMMS, "table": "children"}))
    assert download[0] == table[0]  # same columns, same headers
    assert len(download) == len(table)
    for shown, exported in zip(table[1:], download[1:], strict=True):
        assert shown[:2] == exported[:2]
        assert [number(c) for c in shown[2:]] == [Decimal(c) for c in exported[2:]]
    results = api_usage(api, users["manager_a"], tenant="reseller-a", group_by="child", **COMMS)
    from_api = {(r["child_name"], r["meter"]): r["quantity"] for r in results}
    meters = ["call_minutes", "chat_sessions", "sip_integrations", "emails"]  # catalog order
    assert download[0][2:] == [
        "Call minutes (minutes)", "Chat sessions (count)", "SIP integrations (count)",
        "Emails (count)",
    ]  # fmt: skip
    for row in download[1:]:
        assert row[2:] == [from_api[(row[0], m)] for m in meters]
    assert download[1][:3] == ["Org A", "Organization", "16.250000"]


def test_meter_totals_csv_equals_cards_equals_api(report_usage, users, login, api):
    client = login(users["partner"])
    download = csv_rows(client.get("/reports/t/partner-p/csv/", {**COMMS, "table": "meters"}))
    assert download[0] == ["Meter", "Code", "Unit", "Total", "Previous period", "Change %"]
    totals = {row[1]: row[3] for row in download[1:]}
    results = api_usage(api, users["partner"], tenant="partner-p", **COMMS)
    assert {r["meter"]: r["quantity"] for r in results} == {
        k: v for k, v in totals.items() if Decimal(v)
    }
    assert totals["call_minutes"] == "16.250000"
    assert download[1][4:] == ["10.000000", "62.5"]


def test_chart_json_and_its_table_equal_the_daily_api(report_usage, users, login, api):
    client = login(users["manager_a"])
    params = {**COMMS, "meter": "call_minutes"}
    chart = client.get("/reports/t/reseller-a/chart/", params).json()
    assert set(chart) == {"labels", "datasets", "meter", "unit", "display"}
    assert chart["display"] == {"symbol": "minutes", "name": "minutes", "factor": "1", "places": 2}
    daily = api_usage(api, users["manager_a"], tenant="reseller-a", group_by="day", **params)
    by_day = {r["day"]: Decimal(r["quantity"]) for r in daily}
    stacked = [sum(values) for values in zip(*(d["data"] for d in chart["datasets"]), strict=True)]
    assert {
        d: Decimal(str(v)) for d, v in zip(chart["labels"], stacked, strict=True) if v
    } == by_day
    assert [d["label"] for d in chart["datasets"]] == ["Org A"]
    download = csv_rows(client.get("/reports/t/reseller-a/csv/", {**params, "table": "chart"}))
    assert download[0] == ["Day", "Org A", "Total"]
    assert {r[0]: Decimal(r[2]) for r in download[1:] if Decimal(r[2])} == by_day
    page = client.get("/reports/t/reseller-a/", params).content.decode()
    shown = html_table(page, "chart-numbers")
    assert shown[0] == download[0]
    assert [[r[0], *map(number, r[1:])] for r in shown[1:]] == [
        [r[0], *map(Decimal, r[1:])] for r in download[1:]
    ]


def test_chart_stacks_by_dimension(report_usage, users, login):
    params = {**COMMS, "meter": "call_minutes", "stack": "dimension"}
    chart = login(users["manager_a"]).get("/reports/t/reseller-a/chart/", params).json()
    totals = {d["label"]: sum(d["data"]) for d in chart["datasets"]}
    assert totals == {"inbound": 14.0, "outbound": 2.25}


def test_filters_change_the_numbers(report_usage, users, login, api):
    client = login(users["manager_a"])
    params = {**COMMS, "meter": "call_minutes", "dimension": "outbound"}
    download = csv_rows(client.get("/reports/t/reseller-a/csv/", {**params, "table": "children"}))
    assert download[0] == ["Child", "Kind", "Call minutes (minutes)"]
    assert download[1] == ["Org A", "Organization", "2.250000"]
    last_month = {**COMMS, "period": "last_month", "table": "meters"}
    rows = csv_rows(client.get("/reports/t/reseller-a/csv/", last_month))
    assert {r[1]: r[3] for r in rows[1:]}["call_minutes"] in ("10.000000", "0.000000")


def test_custom_range_and_invalid_filters(report_usage, users, login):
    client = login(users["manager_a"])
    day = str(report_usage)
    ok = client.get(
        "/reports/t/reseller-a/", {**COMMS, "period": "custom", "start": day, "end": day}
    )
    assert ok.status_code == 200 and f"{day} to {day} (custom range, 1 day)" in ok.content.decode()
    bad = client.get("/reports/t/reseller-a/", {**COMMS, "meter": "no_such_meter"})
    assert bad.status_code == 400 and "Unknown meter" in bad.content.decode()
    backwards = {"period": "custom", "start": day, "end": "2020-01-01"}
    assert client.get("/reports/t/reseller-a/", backwards).status_code == 400


def test_typed_dates_win_over_the_preset(report_usage, users, login):
    client = login(users["manager_a"])
    today = report_usage
    start, end = today - timedelta(days=40), today - timedelta(days=3)
    params = {**COMMS, "period": "this_month", "start": str(start), "end": str(end)}
    page = client.get("/reports/t/reseller-a/", params).content.decode()
    days = (end - start).days + 1
    assert f"{start} to {end} (custom range, {days} days)" in page
    assert '<option value="custom" selected>' in page
    # The 10 minutes of the day before this month, none of today's 16.25.
    rows = csv_rows(client.get("/reports/t/reseller-a/csv/", {**params, "table": "meters"}))
    assert {r[1]: r[3] for r in rows[1:]}["call_minutes"] == "10.000000"
    # Dates equal to the preset's keep the preset (a bookmark of "this month" rolls on).
    this_month = {**COMMS, "period": "this_month", "start": str(today.replace(day=1)),
                  "end": str(today)}  # fmt: skip
    page = client.get("/reports/t/reseller-a/", this_month).content.decode()
    assert "(this month, " in page and '<option value="this_month" selected>' in page
    # Only a start typed: from that day to today.
    page = client.get("/reports/t/reseller-a/", {**COMMS, "start": str(start)}).content.decode()
    assert f"{start} to {today} (custom range" in page


def test_date_inputs_state_their_format(report_usage, users, login):
    page = login(users["manager_a"]).get("/reports/t/reseller-a/").content.decode()
    for name in ("start", "end"):
        label = page[page.rindex("<label", 0, page.index(f'name="{name}"')) :]
        label = label[: label.index("</label>")]
        assert 'type="date"' in label and "YYYY-MM-DD, UTC" in label


def test_children_table_sorts_and_links_to_each_child(report_usage, users, login, world):
    make_tenant("organization", world.reseller_a, slug="zeta-org", name="Zeta Org")
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/", COMMS).content.decode()
    assert [r[0] for r in html_table(page, "children-table")[1:]] == ["Org A", "Zeta Org"]
    assert 'href="/reports/t/zeta-org/"' in page
    page = client.get("/reports/t/reseller-a/", {**COMMS, "c-sort": "-name"}).content.decode()
    assert [r[0] for r in html_table(page, "children-table")[1:]] == ["Zeta Org", "Org A"]


def test_tenant_own_usage_is_a_row_so_columns_add_up(report_usage, users, login):
    client = login(users["manager_a"])
    rows = csv_rows(client.get("/reports/t/org-a/csv/", {**COMMS, "table": "children"}))
    assert [r[:3] for r in rows[1:]] == [
        ["Agent A", "Agent", "14.750000"],
        ["Org A (own usage)", "own usage", "1.500000"],
    ]


def test_top_consumers_follow_the_selected_meter(report_usage, users, login):
    page = login(users["manager_a"]).get("/reports/t/org-a/", COMMS).content.decode()
    top = page[page.index('class="card top-consumers"') :]
    top = top[: top.index("</section>")]
    assert "Agent A" in top and "14.75 minutes" in top and "90.8%" in top
    assert 'href="/reports/t/org-a/' not in top  # the organization's own usage is no consumer


def page_queries(client, slug) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/reports/t/{slug}/", COMMS).status_code == 200
    return len(queries)


def test_page_queries_do_not_grow_with_children(report_usage, users, login, world):
    client = login(users["manager_a"])
    few = page_queries(client, "reseller-a")
    for n in range(12):
        org = make_tenant("organization", world.reseller_a, slug=f"more-{n}")
        make_tenant("agent", org, slug=f"more-agent-{n}")
    assert page_queries(client, "reseller-a") == few


def test_page_query_budget(report_usage, users, login, django_assert_max_num_queries):
    client = login(users["partner"])
    with django_assert_max_num_queries(90):
        assert client.get("/reports/t/partner-p/", COMMS).status_code == 200


LEVELS = [
    ("partner", "partner-p"),
    ("manager_a", "reseller-a"),
    ("manager_a", "org-a"),
    ("org_a", "agent-a"),
]


@pytest.mark.parametrize(("user", "slug"), LEVELS)
def test_csv_of_every_level_equals_the_api(report_usage, users, login, api, user, slug):
    client = login(users[user])
    totals = csv_rows(client.get(f"/reports/t/{slug}/csv/", {**COMMS, "table": "meters"}))
    by_meter = api_usage(api, users[user], tenant=slug, **COMMS)
    assert {r[1]: r[3] for r in totals[1:] if Decimal(r[3])} == {
        r["meter"]: r["quantity"] for r in by_meter
    }
    children = csv_rows(client.get(f"/reports/t/{slug}/csv/", {**COMMS, "table": "children"}))
    by_child = api_usage(api, users[user], tenant=slug, group_by="child", **COMMS)
    column = children[0].index("Call minutes (minutes)")
    from_api = {r["child_name"]: r["quantity"] for r in by_child if r["meter"] == "call_minutes"}
    for row in children[1:]:
        name = row[0].removesuffix(" (own usage)")
        assert row[column] == from_api.get(name, "0.000000")
    # The children's column adds up to the meter card.
    card = next(r[3] for r in totals[1:] if r[1] == "call_minutes")
    assert sum(Decimal(r[column]) for r in children[1:]) == Decimal(card)


def test_csv_and_chart_answer_400_for_bad_filters(report_usage, users, login):
    client = login(users["manager_a"])
    bad = {"meter": "no_such_meter"}
    response = client.get("/reports/t/reseller-a/csv/", bad)
    assert response.status_code == 400 and "Unknown meter" in response.content.decode()
    response = client.get("/reports/t/reseller-a/chart/", bad)
    assert response.status_code == 400 and "meter" in response.json()["errors"]
    assert client.get("/reports/t/reseller-a/records/csv/", {"end": "x"}).status_code == 400
    assert client.get("/reports/t/reseller-a/csv/", {"table": "nope"}).status_code == 404


def test_children_are_listed_without_any_usage_or_meters(world, users, login):
    from metering.models import Meter

    Meter.objects.filter(category="communications").delete()  # no meters in the tab
    page = login(users["manager_a"]).get("/reports/t/reseller-a/", COMMS).content.decode()
    assert [r[0] for r in html_table(page, "children-table")[1:]] == ["Org A"]


def test_the_chart_offers_only_the_stackings_that_apply(report_usage, users, login):
    client = login(users["manager_a"])
    # An agent has no children: its call minutes stack by direction, nothing else.
    agent = client.get("/reports/t/agent-a/?category=communications&meter=call_minutes")
    html = agent.content.decode()
    assert agent.status_code == 200
    assert 'value="child"' not in html and "Stacked by direction" in html
    query = {"category": "communications", "meter": "call_minutes", "stack": "child"}
    chart = client.get("/reports/t/agent-a/chart/", query).json()
    assert {d["label"] for d in chart["datasets"]} == {"inbound", "outbound"}
    # An organization offers both.
    org = client.get("/reports/t/org-a/?category=communications&meter=call_minutes")
    assert 'value="child"' in org.content.decode() and 'value="dimension"' in org.content.decode()
