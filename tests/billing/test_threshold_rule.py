"""One rule for limits and thresholds on every surface: the entitlement, the alerts
(API and statements page), the report's plan bar. And alerts belong to the month
of the usage: last month's usage raises last month's alert, at the rollup while its
statements are open and at finalization at the latest."""

import csv
import io
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest
from django.utils import timezone
from django.utils.html import strip_tags

from billing.closing import close_months
from billing.models import Plan, PlanItem, Statement, UsageAlert
from billing.periods import month_of
from billing.plans import subscribe
from billing.statements import refresh_statement
from billing.tasks import after_rollup
from metering.models import Meter
from tests.billing.conftest import rollup, send

LIMIT = D("10")


def limited_plan(world, code="a-capped", limit=LIMIT, included=D("0"), thresholds=(80, 100)):
    plan = Plan.objects.create(code=code, name=code, owner=world.reseller_a, base_fee=D("1"))
    PlanItem.objects.create(
        plan=plan,
        meter=Meter.objects.get(code="call_minutes"),
        included_quantity=included,
        limit=limit,
        overage_policy=PlanItem.OveragePolicy.BLOCK,
        unit_price=D("0.1"),
        thresholds=list(thresholds),
    )
    return plan


def surfaces(users, api, login) -> dict:
    """What each surface says about org A's call minutes this month."""
    month = f"{month_of(timezone.now().date()):%Y-%m}"
    client = api(users["manager_a"])
    entitlement = client.get("/api/v1/entitlements/?tenant=org-a&meter=call_minutes").json()
    alerts = client.get(f"/api/v1/alerts/?tenant=org-a&period={month}").json()
    alerts = alerts["results"] if isinstance(alerts, dict) else alerts
    browser = login(users["manager_a"])
    page = browser.get("/reports/t/org-a/?category=communications").content.decode()
    statements = browser.get(f"/reports/t/org-a/statements/csv/?table=alerts&period={month}")
    statement_rows = csv.DictReader(io.StringIO(b"".join(statements.streaming_content).decode()))
    return {
        "blocked": not entitlement["allowed"],
        "alert_100": any(a["percent"] == 100 for a in alerts),
        "listed_100": any(row["Threshold (%)"] == "100" for row in statement_rows),
        "bar_over": 'class="plan-bar over"' in page,
        "stored_100": UsageAlert.objects.filter(percent=100).exists(),
    }


@pytest.mark.parametrize("used, reached", [(D("9"), False), (LIMIT, True), (D("11"), True)])
def test_every_surface_reaches_the_limit_at_the_same_unit(world, users, api, login, used, reached):
    subscribe(
        tenant=world.org_a, plan=limited_plan(world), starts_on=month_of(timezone.now().date())
    )
    at = datetime.combine(timezone.now().date(), time(0, 0, 1), tzinfo=UTC)
    send({"tenant": "agent-a", "meter": "call_minutes", "quantity": str(used), "at": at})
    rollup()
    after_rollup()
    seen = surfaces(users, api, login)
    assert seen == {key: reached for key in seen}, seen
    # 80 % is crossed in every case (8 of 10), and said so everywhere.
    assert UsageAlert.objects.filter(percent=80).count() == 1


def test_without_a_limit_the_included_quantity_is_the_base(world, users, api, login):
    plan = limited_plan(world, limit=None, included=D("10"), thresholds=(100,))
    PlanItem.objects.filter(plan=plan).update(overage_policy=PlanItem.OveragePolicy.CHARGE)
    subscribe(tenant=world.org_a, plan=plan, starts_on=month_of(timezone.now().date()))
    at = datetime.combine(timezone.now().date(), time(0, 0, 1), tzinfo=UTC)
    send({"tenant": "agent-a", "meter": "call_minutes", "quantity": "10", "at": at})
    rollup()
    after_rollup()
    seen = surfaces(users, api, login)
    assert seen["alert_100"] and seen["bar_over"] and seen["listed_100"]
    assert not seen["blocked"]  # only a block item with a limit refuses


@pytest.fixture
def last_month(world):
    """Org A on a capped plan since the start of last month, 12 call minutes used late in it."""
    this_month = month_of(timezone.now().date())
    period = month_of(this_month - timedelta(days=1))
    subscribe(tenant=world.org_a, plan=limited_plan(world), starts_on=period)
    at = datetime.combine(this_month - timedelta(days=1), time(12), tzinfo=UTC)
    send({"tenant": "agent-a", "meter": "call_minutes", "quantity": "12", "at": at},
         now=at + timedelta(hours=1))  # fmt: skip
    return period


def test_late_usage_raises_last_months_alert_at_the_rollup(world, last_month):
    refresh_statement(world.org_a, last_month)  # last month's draft is still open
    UsageAlert.objects.all().delete()  # as if the usage had only just rolled up
    rollup()
    after_rollup()
    assert set(UsageAlert.objects.values_list("period", "percent")) == {
        (last_month, 80),
        (last_month, 100),
    }


def test_finalization_raises_the_alerts_its_month_implies(world, last_month):
    rollup()
    UsageAlert.objects.all().delete()
    assert not Statement.objects.filter(period=last_month).exists()
    result = close_months()
    assert result == {"alerts": 2, "finalized": 1}
    assert set(UsageAlert.objects.values_list("period", "percent")) == {
        (last_month, 80),
        (last_month, 100),
    }
    assert Statement.objects.get(period=last_month).status == Statement.Status.FINAL
    assert close_months() == {"alerts": 0, "finalized": 0}


def test_after_a_plan_change_the_bar_counts_the_new_plans_days(world, users, login):
    """Last month: 12 call minutes on a plan with a limit of 10, then a change to a plan
    with a limit of 14 for the last day, with 3 minutes. The bar of last month
    shows the new plan against its own 3 minutes, as its alerts count them."""
    this_month = month_of(timezone.now().date())
    period = month_of(this_month - timedelta(days=1))
    last_day = this_month - timedelta(days=1)
    subscribe(tenant=world.org_a, plan=limited_plan(world), starts_on=period)
    roomy = limited_plan(world, code="a-roomy", limit=D("14"))
    subscribe(tenant=world.org_a, plan=roomy, starts_on=last_day)
    early = datetime.combine(period, time(12), tzinfo=UTC)
    late = datetime.combine(last_day, time(12), tzinfo=UTC)
    send({"tenant": "agent-a", "meter": "call_minutes", "quantity": "12", "at": early},
         now=early + timedelta(hours=1))  # fmt: skip
    send({"tenant": "agent-a", "meter": "call_minutes", "quantity": "3", "at": late},
         now=late + timedelta(hours=1))  # fmt: skip
    rollup()
    close_months()
    alerts = set(UsageAlert.objects.values_list("subscription__plan__code", "percent"))
    assert alerts == {("a-capped", 80), ("a-capped", 100)}
    page = login(users["manager_a"]).get(
        "/reports/t/org-a/?period=last_month&category=communications"
    )
    html = page.content.decode()
    # Counted over the month, 15 minutes would be over the new limit of 14.
    assert 'class="plan-bar ok"' in html and "limit 14" in strip_tags(html)
