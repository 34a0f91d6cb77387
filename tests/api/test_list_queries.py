"""Every API list answers in a fixed number of queries, whatever it lists, and
counts nothing: a list of many statements (with their lines), alerts, plans or
events runs the queries of a list of one. Walked from the URL resolver, so a new
list is checked unlisted."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import PlatformPrincipal
from billing.models import Plan, PlanItem, Statement, StatementLine, Subscription, UsageAlert
from metering.ingestion import ingest_events
from metering.models import Meter
from tests.factories import make_tenant
from tests.security.test_route_isolation import ALL_ROUTES
from tests.security.two_resellers import two_resellers

NOT_LISTS = {"api:root", "api:auth-token"}
LISTS = sorted(r.name for r in ALL_ROUTES if r.is_api and not r.keys and r.name not in NOT_LISTS)
# What a list route needs to answer at all.
REQUIRED = {
    "api:usage": {"tenant": "reseller-a"},
    "api:margin": {"tenant": "reseller-a"},
    "api:entitlements": {"tenant": "org-a", "meter": "call_minutes"},
}
MORE = 6


def add_customers(world, count: int) -> None:
    """`count` more organizations under reseller A, each with a plan, a subscription,
    a statement of three lines, an alert and a few events."""
    today = timezone.now().date()
    period = today.replace(day=1)
    meters = list(Meter.objects.filter(code__in=["call_minutes", "emails", "chat_sessions"]))
    events = []
    for n in range(count):
        org = make_tenant("organization", world.reseller_a, slug=f"more-{n}")
        agent = make_tenant("agent", org, slug=f"more-{n}-agent")
        plan = Plan.objects.create(code=f"more-{n}", name=f"More {n}", owner=world.reseller_a)
        item = PlanItem.objects.create(plan=plan, meter=meters[0], thresholds=[80])
        subscription = Subscription.objects.create(tenant=org, plan=plan, starts_on=period)
        statement = Statement.objects.create(
            tenant=org, period=period, currency="USD", base_fee=Decimal("1"),
            usage_amount=Decimal("2"), total=Decimal("3"), as_of=timezone.now(),
        )  # fmt: skip
        for meter in meters:
            StatementLine.objects.create(
                statement=statement, meter=meter, plan_code=plan.code, starts_on=period,
                ends_on=today, used=Decimal("1"), included=Decimal("0"), overage=Decimal("1"),
                amount=Decimal("1"),
            )  # fmt: skip
        UsageAlert.objects.create(
            tenant=org, subscription=subscription, plan_item=item, percent=80, period=period,
            usage=Decimal("8"), base=Decimal("10"),
        )  # fmt: skip
        events += [
            {"event_id": f"more-{n}-{e}", "tenant": agent.slug, "meter": "call_minutes",
             "quantity": "1", "timestamp": (timezone.now() - timedelta(minutes=e)).isoformat()}
            for e in range(3)
        ]  # fmt: skip
    ingest_events(events, principal=PlatformPrincipal())


def queries_of(client, url) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.content[:300])
    return [q["sql"] for q in captured.captured_queries]


def test_every_api_list_is_walked():
    assert {"api:event-list", "api:statement-list", "api:alert-list", "api:plan-list",
            "api:subscription-list", "api:tenant-list", "api:meter-list", "api:usage",
            "api:margin", "api:entitlements"} <= set(LISTS)  # fmt: skip


@pytest.mark.parametrize("who", ["superuser", "manager_a"])
@pytest.mark.parametrize("name", LISTS)
def test_a_list_of_many_runs_the_queries_of_a_list_of_one(
    world, users, api, name, who, django_assert_max_num_queries
):
    two_resellers(world, users)
    client = api(users[who])
    url = reverse(name)
    params = REQUIRED.get(name)
    few = queries_of(client, url if params is None else url + "?" + urlencoded(params))
    add_customers(world, MORE)
    with django_assert_max_num_queries(len(few)):
        many = queries_of(client, url if params is None else url + "?" + urlencoded(params))
    # No list counts its rows (a count of a LIMITed subquery reads a bounded few).
    assert not [sql for sql in many if 'AS "__count"' in sql]


def urlencoded(params: dict) -> str:
    return "&".join(f"{k}={v}" for k, v in params.items())


@pytest.fixture
def plans(world):
    for n in range(3):
        Plan.objects.create(code=f"p-{n}", name=f"P {n}")


def test_pages_link_next_and_previous_without_counting(plans, users, api):
    client = api(users["superuser"])
    with CaptureQueriesContext(connection) as captured:
        first = client.get("/api/v1/plans/?page_size=2").json()
    assert not any("COUNT(" in q["sql"] for q in captured.captured_queries)
    assert [p["code"] for p in first["results"]] == ["p-0", "p-1"]
    assert first["previous"] is None
    assert first["next"].endswith("/api/v1/plans/?page=2&page_size=2")
    second = client.get(first["next"]).json()
    assert [p["code"] for p in second["results"]] == ["p-2"]
    assert second["next"] is None
    assert second["previous"].endswith("/api/v1/plans/?page_size=2")


@pytest.mark.parametrize("page", ["abc", "0", "-1", "3", "99999999999999999999", "last"])
def test_a_page_that_is_not_there_answers_404(plans, users, api, page):
    response = api(users["superuser"]).get(f"/api/v1/plans/?page_size=2&page={page}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid page."}
