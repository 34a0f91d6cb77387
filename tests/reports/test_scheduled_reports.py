"""Scheduled usage reports: set up by a tenant's managers (page and API), mailed once
per period with the page's own tables as CSV, unsubscribed by link, fired by a real
task cluster."""

import csv
import io
import re
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from django.core import mail
from django.utils import timezone
from django_q.models import Schedule

from accounts.models import Brand, PlatformPrincipal
from metering.ingestion import ingest_events
from reports.models import ReportDelivery, ReportSchedule
from reports.scheduled import last_complete_period, send_due_reports
from reports.schedules import SEND_SCHEDULE
from tests.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]
SCHEDULES = "/api/v1/report-schedules/"


@pytest.mark.parametrize(
    ("today", "weekly", "monthly"),
    [
        ("2026-12-02", "2026-11-23 2026-11-29", "2026-11-01 2026-11-30"),
        ("2026-11-30", "2026-11-23 2026-11-29", "2026-10-01 2026-10-31"),
        ("2027-01-01", "2026-12-21 2026-12-27", "2026-12-01 2026-12-31"),
    ],
)
def test_the_last_complete_week_and_month(today, weekly, monthly):
    week = last_complete_period("weekly", date.fromisoformat(today))
    month = last_complete_period("monthly", date.fromisoformat(today))
    assert f"{week.start} {week.end}" == weekly and f"{month.start} {month.end}" == monthly


@pytest.fixture
def last_week(world):
    """Usage in the last whole week, and a weekly schedule made before it began."""
    today = timezone.now().date()
    period = last_complete_period("weekly", today)
    at = timezone.now() - timedelta(days=(today - period.start).days - 1)
    rows = [("agent-a", "call_minutes", "5"), ("org-a", "call_minutes", "1.25"),
            ("agent-a", "emails", "3"), ("agent-b", "emails", "9")]  # fmt: skip
    ingest_events(
        [{"event_id": f"w{n}", "tenant": t, "meter": m, "quantity": q, "timestamp": at.isoformat()}
         for n, (t, m, q) in enumerate(rows)],
        principal=PlatformPrincipal(),
    )  # fmt: skip
    schedule = ReportSchedule.objects.create(
        tenant=world.reseller_a,
        frequency="weekly",
        recipients=["ana@example.com", "bo@example.com"],
    )
    ReportSchedule.objects.filter(pk=schedule.pk).update(
        created_at=timezone.now() - timedelta(days=14)
    )
    schedule.refresh_from_db()
    return schedule, period


def test_a_due_report_goes_to_each_recipient_once_with_the_pages_tables(
    world, users, login, last_week
):
    schedule, period = last_week
    Brand.objects.create(
        tenant=world.reseller_a, name="Acme Telecom", support_email="h@acme.example"
    )
    mail.outbox.clear()
    assert send_due_reports() == 1
    assert send_due_reports() == 0  # once per period, however often the schedule runs
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@example.com", "bo@example.com"]
    message = mail.outbox[0]
    assert message.subject == (
        f"[Acme Telecom] Weekly usage report: Reseller A, {period.start} to {period.end}"
    )
    assert "Call minutes: 6.25 minutes (no usage before)" in message.body
    assert "Emails: 1 count" in message.body  # one event; agent-b's belong to another reseller
    assert "Chat sessions" not in message.body  # meters without usage are summed up in a line
    assert message.reply_to == ["h@acme.example"]
    assert message.extra_headers["List-Unsubscribe"].startswith("<http")
    names = [name for name, _, _ in message.attachments]
    assert names == [f"meters-reseller-a-{period.start}-{period.end}.csv",
                     f"children-reseller-a-{period.start}-{period.end}.csv"]  # fmt: skip
    client = login(users["manager_a"])
    query = f"period=custom&start={period.start}&end={period.end}"
    mailed = {table: columns(parse(text)) for (_, text, _), table in
              zip(message.attachments, ("meters", "children"), strict=True)}  # fmt: skip
    assert {mime for _, _, mime in message.attachments} == {"text/csv"}
    # The page shows one category at a time; the mail, every meter: each page cell is
    # in the mail, the same.
    for category in ("processing", "storage", "communications"):
        for table in ("meters", "children"):
            url = f"/reports/t/reseller-a/csv/?table={table}&category={category}&{query}"
            shown = columns(parse(b"".join(client.get(url).streaming_content).decode()))
            for header, cells in shown.items():
                if header in ("Meter", "Child", "Kind", "Code", "Unit"):
                    continue
                for row, cell in cells.items():
                    assert same(mailed[table][header][row], cell), (table, header, row)
    delivery = ReportDelivery.objects.get()
    assert delivery.sent_at and delivery.recipients == ["ana@example.com", "bo@example.com"]


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def same(first: str, second: str) -> bool:
    """Equal cells; numbers by value (a child without a meter's events writes 0)."""
    try:
        return Decimal(first) == Decimal(second)
    except InvalidOperation:
        return first == second


def columns(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    """A CSV's columns by header, each as {row's first cell: cell}."""
    header, *body = rows
    return {name: {row[0]: row[i] for row in body} for i, name in enumerate(header)}


def test_a_schedule_made_after_the_period_waits_for_the_next(world, last_week):
    schedule, _ = last_week
    ReportSchedule.objects.filter(pk=schedule.pk).update(created_at=timezone.now())
    assert send_due_reports() == 0 and not mail.outbox


def test_unsubscribing_asks_first_then_removes_only_that_address(world, client, last_week):
    send_due_reports()
    message = next(m for m in mail.outbox if m.to == ["ana@example.com"])
    link = re.search(r"Unsubscribe: (\S+)", message.body).group(1)
    path = link.split("8000", 1)[-1] if "8000" in link else link
    assert client.get(path).status_code == 200  # a mail scanner opening it changes nothing
    assert ReportSchedule.objects.get().recipients == ["ana@example.com", "bo@example.com"]
    response = client.post(path)
    assert response.status_code == 200 and "no longer receives" in response.content.decode()
    assert ReportSchedule.objects.get().recipients == ["bo@example.com"]
    forged = path.replace(path.rstrip("/").rsplit("/", 1)[-1], "forged-token")
    assert client.post(forged).status_code == 400


def test_managers_set_up_reports_through_the_api(world, users, api):
    body = {"tenant": "reseller-a", "frequency": "monthly",
            "recipients": ["Ana@Example.com", "ana@example.com", "cy@example.com"]}  # fmt: skip
    response = api(users["manager_a"]).post(SCHEDULES, body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["recipients"] == ["ana@example.com", "cy@example.com"]
    assert created["last_sent_period"] is None
    listed = api(users["manager_a"]).get(SCHEDULES).json()["results"]
    assert [s["id"] for s in listed] == [created["id"]]
    own = f"{SCHEDULES}{created['id']}/"
    other = api(users["manager_b"])
    for method in ("get", "patch", "delete"):
        assert getattr(other, method)(own, {}, format="json").status_code == 404
    assert other.get(SCHEDULES).json()["results"] == []
    assert other.post(SCHEDULES, body, format="json").status_code == 400  # not its tenant
    assert api(users["viewer_a"]).post(SCHEDULES, body, format="json").status_code == 400
    response = api(users["manager_a"]).patch(own, {"frequency": "weekly"}, format="json")
    assert response.json()["frequency"] == "weekly"
    assert api(users["manager_a"]).delete(own).status_code == 204


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipients": []}, "recipients"),
        ({"recipients": ["not an address"]}, "recipients[0]"),
        ({"recipients": [f"p{n}@example.com" for n in range(21)]}, "recipients"),
        ({"frequency": "daily"}, "frequency"),
    ],
)
def test_bad_schedules_are_400(world, users, api, change, field):
    body = {
        "tenant": "reseller-a",
        "frequency": "weekly",
        "recipients": ["a@example.com"],
        **change,
    }
    response = api(users["manager_a"]).post(SCHEDULES, body, format="json")
    assert response.status_code == 400
    assert field in {e.get("field") for e in response.json()["errors"]}


def test_the_portal_page_adds_and_removes_reports_for_managers_only(world, users, login):
    client = login(users["manager_a"])
    page = client.get("/reports/t/reseller-a/").content.decode()
    assert "/reports/t/reseller-a/schedules/" in page  # the subnav offers it to managers
    added = {"add": "1", "frequency": "weekly", "recipients": "a@example.com, b@example.com"}
    response = client.post("/reports/t/reseller-a/schedules/", added)
    assert response.status_code == 302
    schedule = ReportSchedule.objects.get()
    assert schedule.recipients == ["a@example.com", "b@example.com"]
    response = client.post("/reports/t/reseller-a/schedules/",
                           {"add": "1", "frequency": "weekly", "recipients": "nope"})  # fmt: skip
    assert response.status_code == 400 and "is not an email address" in response.content.decode()
    viewer = login(users["viewer_a"])
    assert "/schedules/" not in viewer.get("/reports/t/reseller-a/").content.decode()
    assert viewer.get("/reports/t/reseller-a/schedules/").status_code == 403
    other = login(users["manager_b"])
    assert other.get("/reports/t/reseller-a/schedules/").status_code == 404
    assert (
        other.post("/reports/t/reseller-b/schedules/", {"delete": schedule.pk}).status_code == 404
    )
    client = login(users["manager_a"])
    client.post("/reports/t/reseller-a/schedules/", {"delete": schedule.pk})
    assert not ReportSchedule.objects.exists()
    assert client.post("/reports/t/reseller-a/schedules/", {"delete": "x"}).status_code == 404


def test_qcluster_sends_the_due_report_once(world, last_week, child_env):
    schedule, _ = last_week
    Schedule.objects.filter(name=SEND_SCHEDULE).update(
        next_run=timezone.now() - timedelta(minutes=1)
    )
    env = {**child_env, "USAGE_Q_GUARD_CYCLE": "30", "USAGE_Q_WORKERS": "1"}
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if ReportDelivery.objects.filter(sent_at__isnull=False).exists():
                break
            assert cluster.poll() is None
            time.sleep(0.5)
        else:
            stop_group(cluster)
            raise AssertionError(cluster.stdout.read())
    finally:
        stop_group(cluster)
    output = cluster.stdout.read()
    assert output.count("Weekly usage report: Reseller A") == 2  # one per recipient
    assert ReportDelivery.objects.count() == 1
    assert Schedule.objects.get(name=SEND_SCHEDULE).next_run > timezone.now()


def test_a_tenant_has_at_most_twenty_scheduled_reports(world, users, api, login):
    for n in range(ReportSchedule.MAX_PER_TENANT):
        ReportSchedule.objects.create(
            tenant=world.reseller_a, frequency="weekly", recipients=[f"p{n}@example.com"]
        )
    body = {"tenant": "reseller-a", "frequency": "weekly", "recipients": ["x@example.com"]}
    response = api(users["manager_a"]).post(SCHEDULES, body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "tenant"
    page = login(users["manager_a"]).post(
        "/reports/t/reseller-a/schedules/",
        {"add": "1", "frequency": "weekly", "recipients": "x@example.com"},
    )
    assert page.status_code == 400 and "at most 20 scheduled reports" in page.content.decode()
    assert ReportSchedule.objects.count() == ReportSchedule.MAX_PER_TENANT
