"""Plan setup in the admin as a reseller's staff member does it, in a real Chromium:
tier rows added with the button, an edit of the description only, and a mid-month
plan change through the subscription admin."""

from datetime import date
from decimal import Decimal as D

import pytest

from billing.models import Plan, PlanItem, Subscription
from metering.models import Meter
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in_to_admin(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def pick_tenant(page, field: str, search: str, label: str) -> None:
    """Choose a tenant in an autocomplete the way a person does: type, then click."""
    page.click(f"#id_{field} + .select2 .select2-selection")
    page.fill(".select2-container--open .select2-search__field", search)
    page.click(f".select2-results__option:text-is('{label}')")


def tier_rows(page, item: int = 0):
    return page.locator(f"#id_items-{item}-tiers_0_up_to").locator(
        "xpath=ancestor::*[@data-tier-rows]"
    )


def test_reseller_staff_sets_up_a_plan_and_changes_a_plan_mid_month(
    page, live_server, world, users
):
    basic = Plan.objects.create(code="a-basic", name="Basic", owner=world.reseller_a)
    Subscription.objects.create(tenant=world.org_a, plan=basic, starts_on=date(2026, 11, 1))
    sign_in_to_admin(page, live_server, "alice")

    # A new plan: owner by autocomplete, one item priced by two tiers.
    page.goto(f"{live_server.url}/admin/billing/plan/add/")
    page.fill("#id_code", "a-voice")
    page.fill("#id_name", "Voice")
    pick_tenant(page, "owner", "reseller", "Reseller A (reseller)")
    assert page.input_value("#id_currency") == "USD"
    page.fill("#id_base_fee", "49")
    portals = str(Meter.objects.get(code="portals").pk)
    page.select_option("#id_items-0-meter", portals)
    # Fields show where they apply: portals has no grouping attribute, so no dimension;
    # a package size only for the package model.
    assert page.locator("#id_items-0-dimension").is_hidden()
    assert page.locator("#id_items-0-package_size").is_hidden()
    page.select_option("#id_items-0-charge_model", "package")
    assert page.locator("#id_items-0-package_size").is_visible()
    page.select_option("#id_items-0-charge_model", "graduated")
    assert page.locator("#id_items-0-package_size").is_hidden()
    page.select_option("#id_items-0-meter", str(Meter.objects.get(code="call_minutes").pk))
    assert page.locator("#id_items-0-dimension").is_visible()
    assert page.get_attribute("#id_items-0-dimension", "placeholder").startswith("direction")
    page.fill("#id_items-0-included_quantity", "1000")
    rows = tier_rows(page)
    assert rows.locator("[data-tier-row]").count() == 2  # the blank rows served for no-JS
    rows.locator("[data-tier-row]").nth(1).locator("[data-tier-remove]").click()
    assert rows.locator("[data-tier-row]").count() == 1
    page.fill("#id_items-0-tiers_0_up_to", "5000")
    page.fill("#id_items-0-tiers_0_unit_price", "0.05")
    rows.locator("[data-tier-add]").click()
    second = rows.locator("[data-tier-row]").nth(1)
    assert second.locator("[data-tier-number]").inner_text() == "2"
    second.locator("input").nth(1).fill("0.04")  # its up-to left empty: the open last tier
    second.locator("input").nth(2).fill("10")  # a flat fee once the tier is reached
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/billing/plan/")
    assert "was added successfully" in page.locator(".messagelist").inner_text()

    plan = Plan.objects.get(code="a-voice")
    assert (plan.owner, plan.base_fee, plan.currency) == (world.reseller_a, D("49"), "USD")
    item = plan.items.get()
    assert (item.meter.code, item.included_quantity, item.unit_price) == (
        "call_minutes", D("1000"), None,
    )  # fmt: skip
    assert item.tiers == [
        {"up_to": "5000", "unit_price": "0.05", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.04", "flat_fee": "10"},
    ]

    # Edit the description only: the blank item row and blank tier rows are ignored.
    page.click("text=a-voice")
    page.wait_for_url(f"{live_server.url}/admin/billing/plan/{plan.pk}/change/")
    assert page.input_value("#id_base_fee") == "49.00"
    assert page.input_value("#id_items-0-tiers_0_unit_price") == "0.05"
    page.fill("#id_description", "Voice minutes, cheaper in bulk.")
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/billing/plan/")
    assert "was changed successfully" in page.locator(".messagelist").inner_text()
    plan.refresh_from_db()
    assert plan.description == "Voice minutes, cheaper in bulk."
    assert list(plan.items.values_list("tiers", flat=True)) == [item.tiers]
    assert PlanItem.history.filter(plan_id=plan.pk).count() == 1

    # Org A moves from Basic to Voice on the 15th, as the API would do it.
    page.goto(f"{live_server.url}/admin/billing/subscription/add/")
    pick_tenant(page, "tenant", "org-a", "Reseller A › Org A (organization)")
    page.select_option("#id_plan", label="Voice (a-voice)")
    page.fill("#id_starts_on", "2026-11-15")
    page.click("input[name=_save]")
    page.wait_for_url(f"{live_server.url}/admin/billing/subscription/")
    assert (
        "Org A's subscription to Basic (a-basic) ended on 2026-11-14; Voice (a-voice) starts "
        "2026-11-15; base fees prorated by day."
    ) in page.locator(".messagelist").inner_text()
    assert list(
        Subscription.objects.filter(tenant=world.org_a)
        .order_by("starts_on")
        .values_list("plan__code", "starts_on", "ends_on")
    ) == [
        ("a-basic", date(2026, 11, 1), date(2026, 11, 14)),
        ("a-voice", date(2026, 11, 15), None),
    ]
