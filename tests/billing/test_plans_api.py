"""Plans and subscriptions over the API: the shared validation, and scoping."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from billing.models import Plan, PlanItem, Subscription

ITEM = {
    "meter": "call_minutes",
    "included_quantity": "1000",
    "limit": "1500",
    "overage_policy": "charge",
    "unit_price": "0.05",
    "tiers": [{"up_to": "5000", "unit_price": "0.05"}, {"up_to": None, "unit_price": "0.04"}],
    "thresholds": [100, 80],
}


def plan_body(code="a-basic", owner="reseller-a", **fields):
    return {
        "code": code,
        "name": "Basic",
        "owner": owner,
        "currency": "USD",
        "base_fee": "100.00",
        "items": [dict(ITEM)],
        **fields,
    }


def messages(response):
    return {(e.get("field"), e["message"]) for e in response.json()["errors"]}


def test_manager_creates_a_plan_with_items_inline(api, users):
    response = api(users["manager_a"]).post("/api/v1/plans/", plan_body(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == "reseller-a"
    [item] = body["items"]
    # Tiers come back with their flat fee, "0" when none was given.
    assert item["tiers"] == [{**tier, "flat_fee": "0"} for tier in ITEM["tiers"]]
    assert item["thresholds"] == [80, 100]  # normalized: sorted, unique
    assert item["limit"] == "1500.000000"
    plan = Plan.objects.get(code="a-basic")
    assert plan.items.get().meter.code == "call_minutes"
    # The change is in the history, with who made it.
    assert plan.history.get().history_user == users["manager_a"]
    assert PlanItem.history.filter(plan_id=plan.pk).count() == 1


@pytest.mark.parametrize(
    ("currency", "base_fee", "unit_price", "shown"),
    [
        ("USD", "500", "0.05", ("500.00", "0.00", "0.05")),
        ("USD", "500", "0.0004", ("500.00", "0.00", "0.0004")),  # a price keeps its places
        ("JPY", "1200", "2", ("1200", "0", "2")),
        ("KWD", "12.5", "0.125", ("12.500", "0.000", "0.125")),
    ],
)
def test_money_reads_in_the_plans_currency_and_stays_a_string(
    api, users, currency, base_fee, unit_price, shown
):
    body = plan_body(currency=currency, base_fee=base_fee, minimum_commitment="0",
                     items=[{**ITEM, "tiers": [], "unit_price": unit_price}])  # fmt: skip
    client = api(users["manager_a"])
    created = client.post("/api/v1/plans/", body, format="json")
    assert created.status_code == 201, created.content
    for plan in (created.json(), client.get("/api/v1/plans/a-basic/").json()):
        item = plan["items"][0]
        assert (plan["base_fee"], plan["minimum_commitment"], item["unit_price"]) == shown
        assert item["limit"] == "1500.000000"  # quantities keep their places


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"tiers": [{"up_to": "10", "unit_price": "1"}, {"up_to": "5", "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"}]},
         "items[0].tiers", "greater than"),
        ({"tiers": [{"up_to": None, "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]},
         "items[0].tiers", "only the last tier may be open"),
        ({"tiers": [{"up_to": "10", "unit_price": "1"}]},
         "items[0].tiers", "last tier must be open"),
        ({"tiers": [{"up_to": None, "unit_price": "-1"}]}, "items[0].tiers", "cannot be negative"),
        ({"tiers": [{"up_to": None, "unit_price": "NaN"}]}, "items[0].tiers", "finite"),
        ({"thresholds": [0]}, "items[0].thresholds", "between 1 and 1000"),
        ({"thresholds": [1001]}, "items[0].thresholds", "between 1 and 1000"),
        ({"thresholds": ["eighty"]}, "items[0].thresholds", "whole percentage"),
        ({"unit_price": "-0.01"}, "items[0].unit_price", "greater than or equal to 0"),
        ({"overage_policy": "block", "limit": None}, "items[0].limit", "needs a limit"),
        ({"limit": "10"}, "items[0].limit", "below the included quantity"),
        ({"meter": "no-such-meter"}, "items[0].meter", "does not exist"),
    ],
)  # fmt: skip
def test_invalid_items_are_refused_with_field_and_reason(api, users, change, field, fragment):
    body = plan_body(items=[{**ITEM, **change}])
    response = api(users["manager_a"]).post("/api/v1/plans/", body, format="json")
    assert response.status_code == 400
    assert any(f == field and fragment in m for f, m in messages(response)), response.json()
    assert not Plan.objects.exists()


def test_plan_level_rules(api, users):
    client = api(users["manager_a"])
    cases = [
        (plan_body(currency="XYZ"), "currency", "ISO 4217"),
        (plan_body(base_fee="10.005"), "base_fee", "2 decimal places"),
        (plan_body(currency="JPY", base_fee="10.5"), "base_fee", "0 decimal places"),
        (plan_body(items=[ITEM, ITEM]), "items[1].meter", "more than once"),
        (plan_body(customer="org-b"), "customer", "does not exist"),
    ]
    for body, field, fragment in cases:
        response = client.post("/api/v1/plans/", body, format="json")
        assert response.status_code == 400, body
        assert any(f == field and fragment in m for f, m in messages(response)), response.json()
    assert not Plan.objects.exists()


def test_only_managers_of_the_owner_write_plans(api, users):
    assert (
        api(users["viewer_a"]).post("/api/v1/plans/", plan_body(), format="json").status_code == 403
    )
    # Another reseller is not even there.
    response = api(users["manager_b"]).post("/api/v1/plans/", plan_body(), format="json")
    assert response.status_code == 400
    assert ("owner", "Object with slug=reseller-a does not exist.") in messages(response)
    # Platform plans are the platform's.
    response = api(users["manager_a"]).post("/api/v1/plans/", plan_body(owner=None), format="json")
    assert response.status_code == 403


def test_reseller_b_cannot_see_or_use_reseller_a_plans(api, users, world):
    api(users["manager_a"]).post("/api/v1/plans/", plan_body(), format="json")
    b = api(users["manager_b"])
    assert b.get("/api/v1/plans/").json()["results"] == []
    assert b.get("/api/v1/plans/a-basic/").status_code == 404
    assert b.patch("/api/v1/plans/a-basic/", {"name": "x"}, format="json").status_code == 404
    response = b.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-b", "plan": "a-basic", "starts_on": str(date.today())},
        format="json",
    )
    assert response.status_code == 400
    assert ("plan", "Object with code=a-basic does not exist.") in messages(response)


def test_patch_replaces_items_by_meter_and_keeps_the_rest(api, users):
    client = api(users["manager_a"])
    client.post("/api/v1/plans/", plan_body(), format="json")
    original = PlanItem.objects.get()
    items = [
        {**ITEM, "included_quantity": "2000", "limit": None},
        {"meter": "emails", "unit_price": "0.001"},
    ]
    response = client.patch("/api/v1/plans/a-basic/", {"items": items}, format="json")
    assert response.status_code == 200, response.content
    assert PlanItem.objects.get(meter__code="call_minutes").pk == original.pk
    assert PlanItem.objects.count() == 2
    for field, value in (("code", "other"), ("owner", "org-a")):
        response = client.patch("/api/v1/plans/a-basic/", {field: value}, format="json")
        assert response.status_code == 400
        assert messages(response) == {(field, "cannot be changed once the plan exists.")}


def test_subscription_is_one_at_a_time_and_a_change_ends_the_previous(api, users, world):
    client = api(users["manager_a"])
    client.post("/api/v1/plans/", plan_body(), format="json")
    client.post("/api/v1/plans/", plan_body(code="a-pro"), format="json")
    first = date(2026, 10, 1)
    response = client.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-a", "plan": "a-basic", "starts_on": str(first)},
        format="json",
    )
    assert response.status_code == 201, response.content
    change = first + timedelta(days=14)
    response = client.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-a", "plan": "a-pro", "starts_on": str(change)},
        format="json",
    )
    assert response.status_code == 201, response.content
    old, new = Subscription.objects.order_by("starts_on")
    assert old.ends_on == change - timedelta(days=1) and new.ends_on is None
    # A dated subscription overlapping the running one is refused, with the reason.
    response = client.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-a", "plan": "a-basic", "starts_on": "2026-10-05", "ends_on": "2026-10-06"},
        format="json",
    )
    assert response.status_code == 400
    assert any(f == "starts_on" and "one active subscription" in m for f, m in messages(response))


def test_a_subscription_patch_only_sets_its_end(api, users):
    client = api(users["manager_a"])
    client.post("/api/v1/plans/", plan_body(), format="json")
    client.post("/api/v1/plans/", plan_body(code="a-pro"), format="json")
    created = client.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-a", "plan": "a-basic", "starts_on": "2026-10-01"},
        format="json",
    )
    url = f"/api/v1/subscriptions/{created.json()['id']}/"
    response = client.patch(url, {"plan": "a-pro", "starts_on": "2026-10-02"}, format="json")
    assert response.status_code == 400
    reason = "cannot be changed; end this subscription and start another."
    assert messages(response) == {("plan", reason), ("starts_on", reason)}
    response = client.patch(url, {"ends_on": "2026-10-31"}, format="json")
    assert response.status_code == 200, response.content
    assert Subscription.objects.get().ends_on == date(2026, 10, 31)


def test_database_refuses_overlapping_subscriptions(world, users):
    from django.db import IntegrityError, transaction

    plan = Plan.objects.create(code="p", name="P", owner=world.reseller_a)
    Subscription.objects.create(
        tenant=world.org_a, plan=plan, starts_on=date(2026, 1, 1), ends_on=date(2026, 1, 31)
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(
            tenant=world.org_a, plan=plan, starts_on=date(2026, 1, 31), ends_on=date(2026, 2, 5)
        )
    Subscription.objects.create(tenant=world.org_a, plan=plan, starts_on=date(2026, 2, 1))
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscription.objects.create(tenant=world.org_a, plan=plan, starts_on=date(2027, 1, 1))


def test_plans_are_usable_only_inside_the_owner_subtree(api, users, world):
    client = api(users["superuser"])
    client.post("/api/v1/plans/", plan_body(), format="json")
    response = client.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-b", "plan": "a-basic", "starts_on": str(timezone.now().date())},
        format="json",
    )
    assert response.status_code == 400
    assert any(f == "plan" and "inside Reseller A" in m for f, m in messages(response))
    # A custom plan is for its one customer.
    client.post("/api/v1/plans/", plan_body(code="a-custom", customer="org-a"), format="json")
    other_org = client.post(
        "/api/v1/tenants/",
        {"name": "Org 2", "slug": "org-a2", "kind": "organization", "parent": "reseller-a"},
        format="json",
    )
    assert other_org.status_code == 201
    response = client.post(
        "/api/v1/subscriptions/",
        {"tenant": "org-a2", "plan": "a-custom", "starts_on": str(timezone.now().date())},
        format="json",
    )
    assert response.status_code == 400
    assert any("custom plan for another customer" in m for _, m in messages(response))


def test_customers_cannot_subscribe_themselves(api, users, world):
    api(users["manager_a"]).post("/api/v1/plans/", plan_body(), format="json")
    from accounts.models import Membership

    Membership.objects.filter(user=users["org_a"]).update(role="manager")
    response = api(users["org_a"]).post(
        "/api/v1/subscriptions/",
        {"tenant": "org-a", "plan": "a-basic", "starts_on": str(timezone.now().date())},
        format="json",
    )
    # The org manager sees the plan only once subscribed; before that it does not exist.
    assert response.status_code == 400
