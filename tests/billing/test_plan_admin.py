"""Plans in the admin: one form with items inline, the shared validation, scoping,
the custom-plan action and the change history."""

from datetime import date
from decimal import Decimal as D

from billing.models import Plan, PlanItem, Subscription
from metering.models import Meter

ADD = "/admin/billing/plan/add/"


def plan_form(owner, items, **fields):
    data = {
        "code": "a-admin",
        "name": "Admin plan",
        "owner": owner.pk,
        "currency": "USD",
        "base_fee": "10",
        "billing_period": "month",
        "description": "",
        "is_active": "on",
        "items-TOTAL_FORMS": str(len(items)),
        "items-INITIAL_FORMS": "0",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for i, item in enumerate(items):
        row = {
            "meter": Meter.objects.get(code=item.get("meter", "call_minutes")).pk,
            "included_quantity": "100",
            "limit": "",
            "overage_policy": "charge",
            "unit_price": "0.1",
            "tiers": "[]",
            "thresholds": "80, 100",
            **{k: v for k, v in item.items() if k != "meter"},
        }
        data.update({f"items-{i}-{k}": v for k, v in row.items()})
    return data


def errors_of(response) -> str:
    return response.content.decode()


def test_manager_saves_a_plan_with_items_in_one_form(world, users, login):
    client = login(users["manager_a"])
    response = client.post(ADD, plan_form(world.reseller_a, [{}, {"meter": "emails"}]))
    assert response.status_code == 302, errors_of(response)[:3000]
    plan = Plan.objects.get(code="a-admin")
    assert plan.items.count() == 2
    assert plan.items.first().thresholds == [80, 100]
    # The history page shows who changed it; item changes show on the form.
    assert client.get(f"/admin/billing/plan/{plan.pk}/history/").status_code == 200
    page = client.get(f"/admin/billing/plan/{plan.pk}/change/").content.decode()
    assert "alice" in page and "Item changes" in page


def test_admin_shows_the_same_validation_messages(world, users, login):
    client = login(users["manager_a"])
    cases = [
        ({"overage_policy": "block"}, "A block item needs a limit"),
        ({"thresholds": "0"}, "between 1 and 1000"),
        ({"tiers": '[{"up_to": "5", "unit_price": "1"}]'}, "last tier must be open"),
        ({"unit_price": "-1"}, "greater than or equal to 0"),
    ]
    for item, message in cases:
        response = client.post(ADD, plan_form(world.reseller_a, [item]))
        assert response.status_code == 200 and message in errors_of(response), message
    response = client.post(ADD, plan_form(world.reseller_a, [{}, {}]))
    assert "appears more than once" in errors_of(response) or "duplicate" in errors_of(response)
    response = client.post(ADD, plan_form(world.reseller_a, [{}], currency="ABC"))
    assert "ISO 4217" in errors_of(response)
    assert not Plan.objects.exists()


def test_admin_tiers_are_held_to_the_apis_json_rules(world, users, login):
    client = login(users["manager_a"])
    cases = [
        ("[" * 100_000 + "]" * 100_000, "levels deep"),
        ('[{"up_to": null, "unit_price": "1", "note": "a\\u0000b"}]', "U+0000"),
        ("[{", "Enter a valid JSON"),
    ]
    for tiers, message in cases:
        response = client.post(ADD, plan_form(world.reseller_a, [{"tiers": tiers}]))
        assert response.status_code == 200 and message in errors_of(response), message
    assert not Plan.objects.exists()


def test_reseller_staff_cannot_see_or_use_another_resellers_plans(world, users, login):
    theirs = Plan.objects.create(code="b-plan", name="B", owner=world.reseller_b)
    platform = Plan.objects.create(code="platform", name="Platform")
    client = login(users["manager_a"])
    listed = {p.code for p in client.get("/admin/billing/plan/").context["cl"].result_list}
    assert listed == set()
    for plan in (theirs, platform):
        assert client.get(f"/admin/billing/plan/{plan.pk}/change/").status_code == 404
        assert client.get(f"/admin/billing/plan/{plan.pk}/history/").status_code == 404
    # Owner choices are the tenants the user manages; B's reseller is not among them.
    response = client.post(ADD, plan_form(world.reseller_b, [{}]))
    assert response.status_code == 200 and not Plan.objects.filter(code="a-admin").exists()
    # Subscribing: the plan choices are the user's own plans only.
    form = client.get("/admin/billing/subscription/add/").context["adminform"].form
    assert theirs not in form.fields["plan"].queryset


def test_duplicate_action_makes_a_custom_plan_for_one_customer(world, users, login):
    plan = Plan.objects.create(code="a-std", name="Std", owner=world.reseller_a)
    PlanItem.objects.create(plan=plan, meter=Meter.objects.get(code="emails"), unit_price=D("1"))
    client = login(users["manager_a"])
    action = {"action": "duplicate_for_customer", "_selected_action": [plan.pk]}
    page = client.post("/admin/billing/plan/", action)
    assert page.status_code == 200 and "Create custom plan" in page.content.decode()
    response = client.post(
        "/admin/billing/plan/",
        {**action, "apply": "1", "customer": world.org_a.pk, "code": "a-std-org-a"},
    )
    assert response.status_code == 302
    copy = Plan.objects.get(code="a-std-org-a")
    assert (copy.customer, copy.owner, copy.items.count()) == (world.org_a, world.reseller_a, 1)


def test_subscription_admin_subscribes_and_keeps_history(world, users, login):
    plan = Plan.objects.create(code="a-std", name="Std", owner=world.reseller_a)
    client = login(users["manager_a"])
    response = client.post(
        "/admin/billing/subscription/add/",
        {"tenant": world.org_a.pk, "plan": plan.pk, "starts_on": "2026-11-01", "ends_on": ""},
    )
    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert subscription.starts_on == date(2026, 11, 1)
    assert subscription.history.get().history_user == users["manager_a"]
    # Another reseller's staff get 404 on it.
    other = login(users["manager_b"])
    assert other.get(f"/admin/billing/subscription/{subscription.pk}/change/").status_code == 404
