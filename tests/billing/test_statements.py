"""Statements, margin, alerts and entitlements over real usage, by hand computation."""

import csv
import io
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core import mail
from django.utils import timezone

from billing.alerts import check_alerts
from billing.models import Plan, PlanItem, Statement, Subscription, UsageAlert
from billing.periods import month_of, next_month
from billing.plans import subscribe
from billing.statements import finalize_closed_periods, refresh_statement
from billing.tasks import scheduled_rollup
from tests.billing.conftest import send


@pytest.fixture
def period():
    return month_of(timezone.now().date())


@pytest.fixture
def plans(world, users):
    retail = Plan.objects.create(
        code="a-retail", name="Retail", owner=world.reseller_a, base_fee=D("100")
    )
    PlanItem.objects.create(
        plan=retail, meter_id=meter("call_minutes"), included_quantity=D("10"),
        unit_price=D("0.5"), thresholds=[50, 100],
    )  # fmt: skip
    PlanItem.objects.create(
        plan=retail, meter_id=meter("emails"), limit=D("5"), overage_policy="block",
        thresholds=[100],
    )  # fmt: skip
    wholesale = Plan.objects.create(
        code="a-wholesale", name="Wholesale", owner=world.partner, customer=world.reseller_a,
        base_fee=D("50"),
    )  # fmt: skip
    PlanItem.objects.create(plan=wholesale, meter_id=meter("call_minutes"), unit_price=D("0.2"))
    return retail, wholesale


def meter(code):
    from metering.models import Meter

    return Meter.objects.get(code=code).pk


@pytest.fixture
def subscribed(world, plans, period):
    retail, wholesale = plans
    subscribe(tenant=world.org_a, plan=retail, starts_on=period)
    subscribe(tenant=world.reseller_a, plan=wholesale, starts_on=period - timedelta(days=40))
    return retail, wholesale


def calls(tenant, minutes, **extra):
    return {"tenant": tenant, "meter": "call_minutes", "quantity": minutes, **extra}


def emails(tenant, n):
    return [{"tenant": tenant, "meter": "emails", "quantity": 1} for _ in range(n)]


def test_statement_rates_usage_against_the_plan(world, subscribed, period, api, users):
    send(calls("agent-a", "7.5"), calls("agent-a", "4.5"), *emails("agent-a", 3))
    statement = refresh_statement(world.org_a, period)
    lines = {line.meter.code: line for line in statement.lines.all()}
    assert (lines["call_minutes"].used, lines["call_minutes"].overage) == (D("12"), D("2"))
    assert lines["call_minutes"].amount == D("1.00")  # 2 × 0.5
    assert lines["emails"].amount == D("0")
    assert (statement.base_fee, statement.total, statement.status) == (D("100"), D("101"), "draft")

    body = (
        api(users["manager_a"])
        .get(f"/api/v1/statements/?tenant=org-a&period={period:%Y-%m}")
        .json()
    )
    [result] = body["results"]
    assert (result["status"], result["currency"], result["total"]) == ("draft", "USD", "101.00")
    assert {line["meter"]: line["used"] for line in result["lines"]}["call_minutes"] == "12.000000"
    # The statement's "used" is the usage API's number.
    usage = (
        api(users["manager_a"])
        .get(f"/api/v1/usage/?tenant=org-a&start={period}&meter=call_minutes")
        .json()
    )
    assert D(usage["results"][0]["quantity"]) == lines["call_minutes"].used
    # CSV: one row per line, the same amounts.
    response = api(users["manager_a"]).get(
        f"/api/v1/statements/?tenant=org-a&period={period:%Y-%m}&format=csv"
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert {r["meter"]: D(r["amount"]) for r in rows} == {"call_minutes": D("1"), "emails": D("0")}


def test_final_statement_never_changes(world, subscribed, period):
    send(calls("agent-a", "12"))
    refresh_statement(world.org_a, period)
    finalize_closed_periods(today=next_month(period))
    final = Statement.objects.get(tenant=world.org_a, period=period)
    assert final.status == "final" and final.total == D("101")
    send(calls("agent-a", "100"))
    assert refresh_statement(world.org_a, period).total == D("101")
    assert finalize_closed_periods(today=next_month(period)) == 0  # idempotent catch-up
    assert Statement.objects.get(pk=final.pk).lines.get(meter__code="call_minutes").used == 12


def test_plan_change_mid_month_prorates_and_rates_each_part(world, plans, period):
    retail, _ = plans
    cheaper = Plan.objects.create(code="a-lite", name="Lite", owner=world.reseller_a)
    first_half = subscribe(tenant=world.org_a, plan=retail, starts_on=period)
    subscribe(tenant=world.org_a, plan=cheaper, starts_on=period + timedelta(days=10))
    first_half.refresh_from_db()
    draft = refresh_statement(world.org_a, period)
    days = (next_month(period) - period).days
    expected = (D("100") * 10 / days).quantize(D("0.01"))
    assert draft.base_fee == expected
    assert {line.plan_code for line in draft.lines.all()} == {"a-retail"}


def test_reseller_margin_is_retail_minus_wholesale(world, subscribed, period, api, users):
    send(calls("agent-a", "12"), *emails("agent-a", 2))
    scheduled_rollup()  # refreshes every draft
    body = (
        api(users["manager_a"])
        .get(f"/api/v1/margin/?tenant=reseller-a&period={period:%Y-%m}")
        .json()
    )
    rows = {
        r["meter"]: (D(r["retail"]), D(r["wholesale"]), D(r["margin"])) for r in body["results"]
    }
    # Retail: 100 base + (12 − 10) × 0.5; wholesale: 50 base + 12 × 0.2 on the whole subtree.
    assert rows["base_fee"] == (D("100"), D("50"), D("50"))
    assert rows["call_minutes"] == (D("1.00"), D("2.40"), D("-1.40"))
    assert (D(body["retail"]), D(body["wholesale"]), D(body["margin"])) == (
        D("101"), D("52.40"), D("48.60"),
    )  # fmt: skip
    assert body["customer_statements"] == 1


def test_alerts_are_raised_once_per_threshold_and_mailed(
    world, subscribed, users, django_capture_on_commit_callbacks
):
    users["manager_a"].email = "alice@example.com"
    users["manager_a"].save()
    send(calls("agent-a", "6"))
    with django_capture_on_commit_callbacks(execute=True):
        first = check_alerts()
    assert [(a.plan_item.meter.code, a.percent) for a in first] == [("call_minutes", 50)]
    send(calls("agent-a", "6"))
    with django_capture_on_commit_callbacks(execute=True):
        second = check_alerts()
        again = check_alerts()
        scheduled_rollup()
    assert [a.percent for a in second] == [100] and again == []
    assert UsageAlert.objects.count() == 2
    assert len(mail.outbox) == 2
    assert mail.outbox[1].to == ["alice@example.com"]
    assert "100%" in mail.outbox[1].subject


def test_block_limit_alert_on_ingestion_and_entitlement_flips(
    world, subscribed, api, users, django_capture_on_commit_callbacks
):
    client = api(users["manager_a"])

    def entitlement(tenant):
        return client.get(f"/api/v1/entitlements/?tenant={tenant}&meter=emails").json()

    send(*emails("agent-a", 4))
    answer = entitlement("org-a")
    assert (answer["allowed"], answer["used"], answer["remaining"]) == (
        True,
        "4.000000",
        "1.000000",
    )
    with django_capture_on_commit_callbacks(execute=True):
        send(*emails("agent-a", 1))
    assert UsageAlert.objects.get().percent == 100  # raised by ingestion, not a rollup
    for tenant in ("org-a", "agent-a"):
        answer = entitlement(tenant)
        assert (answer["allowed"], answer["policy"], answer["limit"]) == (
            False,
            "block",
            "5.000000",
        )
        assert answer["subscription_tenant"] == "org-a"
    # Over the limit nothing is dropped: the event is recorded and counted.
    result = send(*emails("agent-a", 1))
    assert result.accepted == 1
    assert entitlement("org-a")["used"] == "6.000000"
    # A charge item is always allowed; an unsubscribed tenant has no cap.
    calls_answer = client.get("/api/v1/entitlements/?tenant=org-a&meter=call_minutes").json()
    assert calls_answer["allowed"] is True
    free = api(users["manager_b"]).get("/api/v1/entitlements/?tenant=org-b&meter=emails").json()
    assert (free["allowed"], free["limit"], free["policy"]) == (True, None, None)


def test_billing_endpoints_are_404_for_another_reseller(world, subscribed, period, api, users):
    send(calls("agent-a", "12"))
    scheduled_rollup()
    check_alerts()
    b = api(users["manager_b"])
    month = f"{period:%Y-%m}"
    for url in (
        f"/api/v1/statements/?tenant=org-a&period={month}",
        f"/api/v1/statements/?within=reseller-a&period={month}",
        f"/api/v1/margin/?tenant=reseller-a&period={month}",
        "/api/v1/alerts/?tenant=org-a",
        "/api/v1/entitlements/?tenant=org-a&meter=emails",
        f"/api/v1/subscriptions/{Subscription.objects.get(tenant=world.org_a).pk}/",
        "/api/v1/plans/a-retail/",
    ):
        assert b.get(url).status_code == 404, url
    assert b.get("/api/v1/statements/").json()["results"] == []
    assert b.get("/api/v1/alerts/").json()["results"] == []
    # The customer sees its own statement, not its reseller's wholesale one.
    olga = api(users["org_a"])
    assert olga.get(f"/api/v1/statements/?tenant=org-a&period={month}").status_code == 200
    assert olga.get(f"/api/v1/margin/?tenant=reseller-a&period={month}").status_code == 404


def test_bad_billing_parameters_are_400(api, users, world):
    client = api(users["manager_a"])
    assert client.get("/api/v1/margin/?tenant=reseller-a&period=2026-13").status_code == 400
    assert client.get("/api/v1/margin/").status_code == 400
    assert client.get("/api/v1/entitlements/?tenant=org-a").status_code == 400
    response = client.get("/api/v1/entitlements/?tenant=org-a&meter=nope")
    assert response.json()["errors"][0]["field"] == "meter"


@pytest.mark.parametrize(
    ("currency", "shown"),
    [
        ("USD", {"base_fee": "500.00", "total": "503.13", "amount": "3.13", "price": "0.50"}),
        ("JPY", {"base_fee": "500", "total": "503", "amount": "3", "price": "0.5"}),
        ("KWD", {"base_fee": "500.000", "total": "503.125", "amount": "3.125", "price": "0.500"}),
    ],
)
def test_statement_money_reads_in_its_currency(world, users, api, period, currency, shown):
    from billing.money import round_money
    from metering.models import Meter

    amount = round_money(D("3.125"), currency)
    statement = Statement.objects.create(
        tenant=world.org_a, period=period, currency=currency, base_fee=D("500"),
        usage_amount=amount, total=D("500") + amount, as_of=timezone.now(),
    )  # fmt: skip
    statement.lines.create(
        meter=Meter.objects.get(code="call_minutes"), plan_code="a-retail", starts_on=period,
        ends_on=period, used=D("16.25"), included=D("10"), overage=D("6.25"),
        unit_price=D("0.5"), amount=amount,
    )  # fmt: skip
    response = api(users["org_a"]).get(f"/api/v1/statements/?tenant=org-a&period={period:%Y-%m}")
    [result] = response.json()["results"]
    [line] = result["lines"]
    assert (result["base_fee"], result["total"]) == (shown["base_fee"], shown["total"])
    assert (line["amount"], line["unit_price"]) == (shown["amount"], shown["price"])
    assert line["used"] == "16.250000"  # quantities keep their stored places
