"""Times on the portal's pages read in the viewer's tenant's zone, named; days stay
UTC days, and the API keeps speaking UTC."""

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from django.utils.html import strip_tags

from accounts.models import PlatformPrincipal
from accounts.selectors import viewer_timezone
from billing.alerts import check_alerts
from billing.models import Plan, PlanItem, UsageAlert
from billing.periods import month_of
from billing.plans import subscribe
from billing.tasks import after_rollup
from metering.ingestion import ingest_events
from metering.models import Meter
from tests.factories import make_user
from tests.reports.tables import html_table

CHICAGO = ZoneInfo("America/Chicago")


@pytest.fixture
def chicago(world):
    """Reseller A's staff work in Chicago; the organization below it in Tokyo."""
    world.reseller_a.timezone = "America/Chicago"
    world.reseller_a.save()
    world.org_a.timezone = "Asia/Tokyo"
    world.org_a.save()
    return world


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_viewers_zone_is_their_top_tenants_and_utc_for_superusers(chicago, users):
    assert viewer_timezone(users["manager_a"]) == "America/Chicago"
    assert viewer_timezone(users["org_a"]) == "Asia/Tokyo"
    assert viewer_timezone(users["superuser"]) == "UTC"
    assert viewer_timezone(users["nobody"]) == "UTC"
    # A member of a tenant and of one inside it reads in the outer one's zone.
    users["org_a"].memberships.create(tenant=chicago.reseller_a, role="viewer")
    assert viewer_timezone(users["org_a"]) == "America/Chicago"


def test_report_page_names_the_zone_and_says_days_are_utc_days(chicago, report_usage, users, login):
    page = login(users["manager_a"]).get("/reports/t/org-a/").content.decode()
    head = page[page.index('class="realtime"') :]
    head = head[: head.index("</p>")]
    # The as-of time (now) in Chicago, UTC on hover.
    shown = timezone.now().astimezone(CHICAGO).strftime("%Y-%m-%d")
    assert f"Usage up to {shown}" in strip_tags(head) and "America/Chicago" in head
    assert 'title="' in head and ' UTC">' in head
    assert "Days are UTC days" in page and "(America/Chicago)" in page
    # The viewer's zone, not the viewed tenant's (org-a is in Tokyo).
    assert "Asia/Tokyo" not in page
    root = login(users["superuser"]).get("/reports/t/org-a/").content.decode()
    assert "Days are UTC days" in root and "America/Chicago" not in root


def test_records_show_occurred_and_received_times_in_the_viewers_zone(chicago, users, login):
    late_evening = datetime(2026, 11, 2, 3, 30, tzinfo=UTC)  # 21:30 on Nov 1 in Chicago
    ingest_events(
        [{"event_id": "tz1", "tenant": "agent-a", "meter": "emails", "quantity": "1",
          "timestamp": late_evening.isoformat()}],
        principal=PlatformPrincipal(),
        now=late_evening + timedelta(minutes=5),
    )  # fmt: skip
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/records/", {"start": "2026-11-01"}).content.decode()
    table = html_table(page, "records-table")
    assert table[0][0] == "Time (America/Chicago)" and table[0][-1] == "Received (America/Chicago)"
    assert table[1][0] == "2026-11-01 21:30:00" and table[1][-1] == "2026-11-01 21:35:00"
    download = csv_rows(client.get("/reports/t/reseller-a/records/csv/", {"start": "2026-11-01"}))
    assert download[0] == table[0][:2] + ["Tenant slug"] + table[0][2:]
    # The same instant, its offset written (standard time again since that morning).
    assert download[1][0] == "2026-11-01T21:30:00-06:00"
    assert datetime.fromisoformat(download[1][0]) == late_evening
    # Days stay UTC days: the event belongs to November 2 in the usage API and the chart.
    usage = client.get(
        "/api/v1/usage/",
        {"tenant": "reseller-a", "start": "2026-11-01", "end": "2026-11-02", "group_by": "day",
         "meter": "emails"},
    ).json()  # fmt: skip
    assert [r["day"] for r in usage["results"]] == ["2026-11-02"]
    assert usage["as_of"].endswith("Z")  # the API speaks UTC whoever asks


def test_statement_and_alert_times_in_the_viewers_zone(chicago, report_usage, users, login):
    period = month_of(timezone.now().date())
    plan = Plan.objects.create(code="a-tz", name="Tz", owner=chicago.reseller_a)
    calls = Meter.objects.get(code="call_minutes")
    PlanItem.objects.create(
        plan=plan, meter=calls, included_quantity=D("10"), unit_price=D("1"), thresholds=[100]
    )
    subscribe(tenant=chicago.org_a, plan=plan, starts_on=period)
    after_rollup()
    check_alerts()
    alert = UsageAlert.objects.get()
    client = login(users["manager_a"])
    page = client.get("/reports/t/org-a/statements/").content.decode()
    statement = page[page.index('id="statement"') :]
    assert "live estimate as of" in statement and "America/Chicago" in statement[:600]
    alerts = html_table(page, "alerts-table")
    assert alerts[0][0] == "Raised (America/Chicago)"
    assert alerts[1][0] == alert.raised_at.astimezone(CHICAGO).strftime("%Y-%m-%d %H:%M")
    rows = csv_rows(client.get("/reports/t/org-a/statements/csv/", {"table": "alerts"}))
    assert rows[0][0] == "Raised (America/Chicago)"
    assert datetime.fromisoformat(rows[1][0]) == alert.raised_at.replace(microsecond=0)
    assert (
        datetime.fromisoformat(rows[1][0]).utcoffset()
        == alert.raised_at.astimezone(CHICAGO).utcoffset()
    )


def test_admin_and_api_are_not_moved_by_a_viewers_zone(chicago, users, login, api):
    staff = make_user("chi", chicago.reseller_a, "manager", is_staff=True)
    tenant = api(staff).get("/api/v1/tenants/reseller-a/").json()
    assert tenant["timezone"] == "America/Chicago"
    usage = api(staff).get("/api/v1/usage/", {"tenant": "reseller-a"}).json()
    assert usage["as_of"].endswith("Z")
    client = login(staff)
    assert "America/Chicago" in client.get("/reports/t/reseller-a/").content.decode()
    assert timezone.get_current_timezone_name() == "UTC"  # for the request only
    assert "America/Chicago" not in client.get("/admin/").content.decode()
