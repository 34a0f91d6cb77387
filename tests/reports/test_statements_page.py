"""The statements page: statement lines, a reseller's margin, customer statements and
alerts; its CSVs are its tables and agree with the API; plan bars and charges."""

import csv
import io
import json
import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from django.utils.html import strip_tags

from billing.models import Plan, PlanItem, UsageAlert
from billing.periods import month_of
from billing.plans import subscribe
from billing.tasks import after_rollup
from metering.models import Meter
from tests.reports.tables import html_table


def download(client, url) -> list[dict]:
    response = client.get(url)
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_reseller_sees_margin_customers_and_alerts(billed, users, login, api):
    client = login(users["manager_a"])
    month = f"{billed:%Y-%m}"
    page = client.get(f"/reports/t/reseller-a/statements/?period={month}")
    assert page.status_code == 200
    html = page.content.decode()
    for section in ('id="statement"', 'id="margin"', 'id="customers"', 'id="alerts"'):
        assert section in html
    margin_csv = download(
        client, f"/reports/t/reseller-a/statements/csv/?table=margin&period={month}"
    )
    margin_api = (
        api(users["manager_a"]).get(f"/api/v1/margin/?tenant=reseller-a&period={month}").json()
    )
    total = margin_csv[-1]
    assert total["Meter"] == "Total"
    assert D(total["Margin"]) == D(margin_api["margin"])
    by_meter = {r["Meter"]: r for r in margin_csv}
    names = {"base_fee": "Base fees", **dict(Meter.objects.values_list("code", "name"))}
    for row in margin_api["results"]:
        shown = by_meter[names[row["meter"]]]
        assert D(shown["Retail (charged to customers)"]) == D(row["retail"])
        assert D(shown["Wholesale (owed upstream)"]) == D(row["wholesale"])
    customers = download(
        client, f"/reports/t/reseller-a/statements/csv/?table=customers&period={month}"
    )
    assert [r["Tenant"] for r in customers] == ["Org A"]
    alerts = download(client, f"/reports/t/reseller-a/statements/csv/?table=alerts&period={month}")
    assert {r["Threshold (%)"] for r in alerts} == {"50"}  # 16.25 of a 20 limit: 81 %


def test_statement_lines_csv_equals_the_api(billed, users, login, api):
    client = login(users["org_a"])
    month = f"{billed:%Y-%m}"
    lines = download(client, f"/reports/t/org-a/statements/csv/?table=lines&period={month}")
    [statement] = (
        api(users["org_a"])
        .get(f"/api/v1/statements/?tenant=org-a&period={month}")
        .json()["results"]
    )
    [line] = statement["lines"]
    assert D(lines[0]["Used"]) == D(line["used"]) == D("16.25")
    assert D(lines[0]["Amount"]) == D(line["amount"]) == D("3.13")  # 6.25 × 0.5, half-up
    # The organization cannot reach its reseller's margin page.
    assert client.get(f"/reports/t/reseller-a/statements/?period={month}").status_code == 404


def test_report_page_shows_plan_bar_and_child_charges(billed, users, login):
    client = login(users["manager_a"])
    org_page = client.get("/reports/t/org-a/?category=communications").content.decode()
    # 16.25 used of a 20 limit (10 included): past the 50 % threshold, under the limit.
    assert 'class="plan-bar warn"' in org_page
    assert "Included 10, limit 20; alert at 50% crossed" in strip_tags(org_page)
    rows = download(client, "/reports/t/reseller-a/csv/?table=children")
    org_row = next(r for r in rows if r.get("Child", r.get("Name", "")).startswith("Org A"))
    header = f"Charges, {billed:%b %Y} statement"
    assert (D(org_row[header]), org_row["Currency"]) == (D("103.13"), "USD")
    page = client.get("/reports/t/reseller-a/?category=communications").content.decode()
    table = html_table(page, "children-table")
    assert table[0][-1] == header and "Currency" not in table[0]
    assert table[1][0] == "Org A" and table[1][-1] == "103.13 USD"
    assert 'id="charges-note"' not in page


def test_charges_column_across_months_is_left_out_with_a_note(billed, users, login):
    client = login(users["manager_a"])
    start = billed - timedelta(days=3)  # the last days of the month before, and the first
    across = {"category": "communications", "period": "custom", "start": f"{start}",
              "end": f"{billed}"}  # fmt: skip
    page = client.get("/reports/t/reseller-a/", across).content.decode()
    assert not any(h.startswith("Charges") for h in html_table(page, "children-table")[0])
    note = page[page.index('id="charges-note"') :]
    assert "only for a period inside one calendar month" in note[: note.index("</p>")]
    rows = download(
        client,
        f"/reports/t/reseller-a/csv/?table=children&period=custom&start={start}&end={billed}",
    )
    assert not any(name.startswith("Charges") or name == "Currency" for name in rows[0])
    # An organization's children (agents) have no statements: no column, no note.
    org_page = client.get("/reports/t/org-a/", across).content.decode()
    assert 'id="charges-note"' not in org_page


def test_wholesale_items_without_allowance_show_their_charge_not_a_red_bar(billed, users, login):
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/?category=communications").content.decode()
    calls = page[page.index('data-meter="call_minutes"') :]
    calls = calls[: calls.index("</article>")]
    # The wholesale plan includes nothing: 16.25 minutes at 0.2 is charged, not "over".
    assert "plan-bar" not in calls
    assert f"Charges so far, {billed:%b %Y} statement: 3.25 USD" in strip_tags(calls)
    # The organization's retail item has an allowance: its bar, no charge line.
    org_page = client.get("/reports/t/org-a/?category=communications").content.decode()
    assert 'class="plan-bar warn"' in org_page and "Charges so far" not in org_page


def test_bad_period_is_400(billed, users, login):
    client = login(users["manager_a"])
    assert client.get("/reports/t/reseller-a/statements/?period=2026-13").status_code == 400


def test_every_statement_row_links_to_that_statement(billed, users, login):
    client = login(users["manager_a"])
    month = f"{billed:%Y-%m}"
    page = client.get(f"/reports/t/reseller-a/statements/?period={month}").content.decode()
    history = page[page.index('id="history"') :]
    own = f'<a href="/reports/t/reseller-a/statements/?period={month}">{month}</a>'
    assert own in history
    customers = page[page.index('id="customers"') : page.index('id="alerts"')]
    assert f'<a href="/reports/t/org-a/statements/?period={month}">{month}</a>' in customers
    assert f'<a href="/reports/t/org-a/statements/?period={month}">Org A</a>' in customers
    linked = client.get(f"/reports/t/org-a/statements/?period={month}").content.decode()
    assert "Statement for " in linked and 'id="lines-table"' in linked


def test_statement_csvs_write_months_and_iso_times(billed, users, login):
    client = login(users["manager_a"])
    month = f"{billed:%Y-%m}"
    url = f"/reports/t/reseller-a/statements/csv/?period={month}&table="
    assert [r["Period"] for r in download(client, url + "customers")] == [month]
    assert [r["Period"] for r in download(client, url + "statements")] == [month]
    [alert] = download(client, url + "alerts")
    alert_row = UsageAlert.objects.get()
    assert alert["Raised (UTC)"] == alert_row.raised_at.isoformat(
        timespec="seconds"
    )  # viewer in UTC
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", alert["Raised (UTC)"])


def test_lines_name_their_plan_with_its_code(billed, users, login):
    client = login(users["manager_a"])
    month = f"{billed:%Y-%m}"
    page = client.get(f"/reports/t/reseller-a/statements/?period={month}").content.decode()
    [header, line] = html_table(page, "lines-table")
    assert line[header.index("Plan")] == "Wholesale (a-wholesale)"
    lines = download(client, f"/reports/t/reseller-a/statements/csv/?table=lines&period={month}")
    assert [r["Plan"] for r in lines] == ["Wholesale (a-wholesale)"]


@pytest.fixture
def tiered(world, report_usage):
    """Org B on graduated tiers: 99 call minutes, 50 included, overage 49."""
    period = month_of(timezone.now().date())
    plan = Plan.objects.create(code="b-tiered", name="Tiered", owner=world.reseller_b)
    item = PlanItem.objects.create(
        plan=plan,
        meter=Meter.objects.get(code="call_minutes"),
        included_quantity=D("50"),
        unit_price=None,
        tiers=[
            {"up_to": "30", "unit_price": "0.1", "flat_fee": "0"},
            {"up_to": None, "unit_price": "0.05", "flat_fee": "1"},
        ],
    )
    subscribe(tenant=world.org_b, plan=plan, starts_on=period)
    after_rollup()
    return item


def test_tiered_lines_show_the_plan_tiers_as_rated(tiered, users, login):
    client = login(users["manager_b"])
    month = f"{timezone.now():%Y-%m}"
    url = f"/reports/t/org-b/statements/?period={month}"
    words = "up to 30 at 0.10; above at 0.05 + 1.00 flat"

    def shown_line() -> dict:
        [header, line] = html_table(client.get(url).content.decode(), "lines-table")
        return dict(zip(header, line, strict=True))

    line = shown_line()
    assert line["Plan"] == "Tiered (b-tiered)"
    assert line["Plan tiers"] == words
    assert line["Tiers applied"].startswith("0–30: 30 × 0.1 = 3.00; 30–∞: 19 × 0.05 + 1.00 flat")
    assert line["Amount"] == "4.95 USD"
    [exported] = download(client, f"/reports/t/org-b/statements/csv/?table=lines&period={month}")
    assert json.loads(exported["Plan tiers"]) == tiered.tiers
    # Edited since the statement was rated: the statement still shows what priced it.
    tiered.tiers = [{"up_to": None, "unit_price": "9", "flat_fee": "0"}]
    tiered.save()
    Plan.objects.filter(pk=tiered.plan_id).update(name="Renamed")
    line = shown_line()
    assert line["Plan tiers"] == words and line["Amount"] == "4.95 USD"
    # Rated again, it shows the new tiers.
    after_rollup()
    assert shown_line()["Plan tiers"] == "all at 9.00"


def test_lines_without_tiers_leave_plan_tiers_empty(billed, users, login):
    page = login(users["org_a"]).get(f"/reports/t/org-a/statements/?period={billed:%Y-%m}")
    [header, line] = html_table(page.content.decode(), "lines-table")
    assert line[header.index("Plan tiers")] == "" and line[header.index("Unit price")] == "0.5"
