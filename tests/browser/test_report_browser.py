"""The consumption report in a real Chromium: chart drawn, filters, drill-down, CSV."""

import csv
import io
from datetime import timedelta

import pytest

from tests.browser.test_portal_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def chart_values(page) -> list[float]:
    """Wait for Chart.js to draw the canvas, then read the stacked values back from it."""
    # A selector, not a JavaScript predicate: the page's CSP forbids eval.
    page.wait_for_selector("#usage-chart[data-drawn]", state="attached")
    return page.evaluate(
        """() => Chart.getChart(document.querySelector('#usage-chart')).data.datasets
                 .flatMap((d) => d.data)"""
    )


def test_reseller_reads_the_report_filters_drills_down_and_downloads(
    page, live_server, report_usage, users
):
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    # Default tab: processing; the chart is drawn from the JSON view with the numbers.
    assert sum(chart_values(page)) == pytest.approx(1234.5)
    canvas = page.locator("#usage-chart").bounding_box()
    assert canvas["width"] > 100 and canvas["height"] > 100

    page.click("nav.tabs >> text=Communications")
    page.wait_for_url("**category=communications**")
    page.select_option("#id_period", "last_month")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**period=last_month**")
    assert page.locator("#id_period").input_value() == "last_month"
    # Last month holds only the 10 minutes of its last day.
    assert page.locator('[data-meter="call_minutes"] .total').inner_text() == "10.00 minutes"
    assert sum(chart_values(page)) == pytest.approx(10)

    page.select_option("form.inline select[name=stack]", "dimension")
    page.click("form.inline button[type=submit]")
    page.wait_for_url("**stack=dimension**")
    chart_values(page)
    labels = page.evaluate(
        "Chart.getChart(document.querySelector('#usage-chart')).data.datasets.map((d) => d.label)"
    )
    assert labels == ["inbound"]

    with page.expect_download() as download_info:
        page.click(".card:has(#children-table) p.download a")
    download = download_info.value
    with open(download.path(), encoding="utf-8") as downloaded:
        rows = list(csv.reader(io.StringIO(downloaded.read())))
    assert rows[0][:3] == ["Child", "Kind", "Call minutes (minutes)"]
    assert rows[1][:3] == ["Org A", "Organization", "10.000000"]

    page.click("#children-table >> text=Org A")
    page.wait_for_url(f"{live_server.url}/reports/t/org-a/**")
    assert page.locator(".breadcrumb li").all_inner_texts() == ["Reseller A", "Org A"]
    page.click("#children-table >> text=Agent A")
    page.wait_for_url(f"{live_server.url}/reports/t/agent-a/**")
    assert page.locator("h1").inner_text().startswith("Agent A")
    assert sum(chart_values(page)) > 0


def test_chart_numbers_are_readable_without_javascript(browser, live_server, report_usage, users):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server, "alice")
        page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
        page.goto(f"{live_server.url}/reports/t/reseller-a/?category=communications")
        page.click("details.numbers summary")
        assert page.locator("#chart-numbers").is_visible()
        assert "16.25" in page.locator("#chart-numbers").inner_text()
        assert "Org A" in page.locator("#children-table").inner_text()
    finally:
        context.close()


def test_chart_axis_and_tooltip_read_in_hours(page, live_server, world, users):
    from datetime import UTC, datetime

    from accounts.models import PlatformPrincipal
    from metering.ingestion import ingest_events

    at = datetime.now(UTC).replace(hour=0, minute=0, second=1, microsecond=0)
    ingest_events(
        [{"event_id": "h1", "tenant": "agent-a", "meter": "computation_ms",
          "quantity": "152258886", "timestamp": at.isoformat()}],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    page.goto(f"{live_server.url}/reports/t/reseller-a/?meter=computation_ms")
    assert sum(chart_values(page)) == pytest.approx(42.294135, abs=1e-6)
    axis = page.evaluate(
        """() => { const y = Chart.getChart(document.querySelector('#usage-chart')).scales.y;
                   return [y.options.title.text, y.ticks.map((t) => t.label)]; }"""
    )
    assert axis[0] == "hours (h)"
    assert "40" in axis[1] and not any("," in label and len(label) > 6 for label in axis[1])
    assert page.locator("#usage-chart").get_attribute("data-unit") == "h"
    total = page.locator('[data-meter="computation_ms"] .total')
    assert total.inner_text() == "42.29 h"
    assert total.locator("span[title]").get_attribute("title") == "152,258,886 ms"


def test_records_page_filters_in_the_browser(page, live_server, report_usage, users):
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    page.click("text=Detailed records")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/records/")
    assert page.locator("#records-count").inner_text() == "1–7 of 7 records"
    page.select_option("#id_meter", label="Call minutes")
    page.fill("#id_start", str(report_usage))  # the date picker takes the ISO date
    page.fill("#id_end", str(report_usage))
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**meter=call_minutes**")
    assert page.locator("#records-table tbody tr").count() == 3  # not the day before's
    assert page.locator("#records-count").inner_text() == "1–3 of 3 records"
    assert page.locator("#id_meter option:checked").inner_text() == "Call minutes"
    assert page.locator("#id_start").input_value() == str(report_usage)
    tenants = page.locator("#records-table tbody td:nth-child(2)").all_inner_texts()
    assert sorted(tenants) == ["Org A", "Org A › Agent A", "Org A › Agent A"]


def test_tenant_switcher_moves_between_memberships(page, live_server, report_usage, users, world):
    users["org_a"].memberships.create(tenant=world.org_b, role="viewer")
    sign_in(page, live_server, "olga")
    page.wait_for_url(f"{live_server.url}/reports/")
    page.click(".switcher summary")
    page.click(".switcher >> text=Org B")
    page.wait_for_url(f"{live_server.url}/reports/t/org-b/")
    assert page.locator("h1").inner_text().startswith("Org B")
    page.click(".switcher summary")
    page.click(".switcher >> text=Org A")
    page.wait_for_url(f"{live_server.url}/reports/t/org-a/")


def test_typed_dates_apply_and_a_preset_clears_them(page, live_server, report_usage, users):
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    page.goto(f"{live_server.url}/reports/t/reseller-a/?category=communications")
    assert page.locator("#id_period").input_value() == "this_month"
    start, end = report_usage - timedelta(days=40), report_usage - timedelta(days=3)
    page.fill("#id_start", str(start))
    page.fill("#id_end", str(end))
    assert page.locator("#id_period").input_value() == "custom"  # it follows the typing
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**start=**")
    assert page.locator("#id_period").input_value() == "custom"
    assert f"{start} to {end} (custom range" in page.locator("p.period").inner_text()
    assert page.locator('[data-meter="call_minutes"] .total').inner_text() == "10.00 minutes"
    # Back to a preset: the typed dates go, this month shows again.
    page.select_option("#id_period", "this_month")
    assert page.locator("#id_start").input_value() == ""
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**period=this_month**")
    assert "(this month, " in page.locator("p.period").inner_text()
    assert page.locator('[data-meter="call_minutes"] .total').inner_text() == "16.25 minutes"


def test_dates_typed_under_a_preset_apply_without_javascript(
    browser, live_server, report_usage, users
):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        sign_in(page, live_server, "alice")
        page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
        page.goto(f"{live_server.url}/reports/t/reseller-a/?category=communications")
        start, end = report_usage - timedelta(days=40), report_usage - timedelta(days=3)
        page.fill("#id_start", str(start))
        page.fill("#id_end", str(end))
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**period=this_month**")  # the select was left as it was
        assert f"{start} to {end} (custom range" in page.locator("p.period").inner_text()
        assert page.locator("#id_period").input_value() == "custom"
    finally:
        context.close()
