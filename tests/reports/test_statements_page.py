"""The statements page: statement lines, a reseller's margin, customer statements and
alerts; its CSVs are its tables and agree with the API; plan bars and charges."""

import csv
import io
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from django.utils.html import strip_tags

from billing.alerts import check_alerts
from billing.models import Plan, PlanItem
from billing.periods import month_of
from billing.plans import subscribe
from billing.tasks import after_rollup
from metering.models import Meter
from tests.reports.tables import html_table


@pytest.fixture
def billed(world, report_usage):
    period = month_of(timezone.now().date())
    meter = Meter.objects.get(code="call_minutes")
    retail = Plan.objects.create(code="a-retail", name="Retail", owner=world.reseller_a,
                                 base_fee=D("100"))  # fmt: skip
    PlanItem.objects.create(plan=retail, meter=meter, included_quantity=D("10"),
                            limit=D("20"), unit_price=D("0.5"), thresholds=[50, 100])  # fmt: skip
    wholesale = Plan.objects.create(code="a-wholesale", name="Wholesale", owner=world.partner,
                                    customer=world.reseller_a, base_fee=D("40"))  # fmt: skip
    PlanItem.objects.create(plan=wholesale, meter=meter, unit_price=D("0.2"))
    subscribe(tenant=world.org_a, plan=retail, starts_on=period)
    subscribe(tenant=world.reseller_a, plan=wholesale, starts_on=period)
    after_rollup()
    check_alerts()
    return period


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
