"""Plans in the admin: one form with items inline, the shared validation, scoping,
the custom-plan action, subscriptions through the API's service, the tier rows,
values as people write them and the change history."""

from datetime import date
from decimal import Decimal as D
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.contrib.messages import get_messages
from django.db.models import CheckConstraint, UniqueConstraint
from django.db.models.signals import post_save
from django.urls import reverse

from accounts.models import Tenant
from billing.models import Plan, PlanItem, Statement, Subscription
from metering.models import Meter

ADD = "/admin/billing/plan/add/"
SUBSCRIBE = "/admin/billing/subscription/add/"
TIERS = [("5000", "0.05"), ("", "0.04")]


def plan_form(owner, items, **fields):
    """The plan add form as posted; an item's `tiers` are rows of (up to, unit price)."""
    data = {
        "code": "a-admin",
        "name": "Admin plan",
        "owner": "" if owner is None else owner.pk,
        "currency": "USD",
        "base_fee": "10",
        "minimum_commitment": "0",
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
            "charge_model": "graduated",
            "package_size": "",
            "dimension": "",
            "unit_price": "0.1",
            "thresholds": "80, 100",
            **{k: v for k, v in item.items() if k not in ("meter", "tiers")},
        }
        data.update({f"items-{i}-{k}": v for k, v in row.items()})
        for r, (up_to, price, *fee) in enumerate(item.get("tiers", [])):
            data.update({f"items-{i}-tiers-{r}-flat_fee": fee[0]} if fee else {})
            data.update(
                {f"items-{i}-tiers-{r}-up_to": up_to, f"items-{i}-tiers-{r}-unit_price": price}
            )
    return data


class BrowserForm(HTMLParser):
    """What a browser without scripts submits from a page's form: every named input,
    the selected option of each select, every text area; templates left out."""

    def __init__(self, html: str):
        super().__init__()
        self.fields: list[tuple[str, str]] = []
        self.select = self.first_option = self.textarea = None
        self.picked = False
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value") or ("on" if kind == "checkbox" else "")))
        elif tag == "select":
            self.select, self.first_option, self.picked = a.get("name"), None, False
        elif tag == "option" and self.select:
            if self.first_option is None:
                self.first_option = a.get("value", "")
            if "selected" in a:
                self.fields.append((self.select, a.get("value", "")))
                self.picked = True
        elif tag == "textarea":
            self.textarea, self.text = a.get("name"), ""

    def handle_endtag(self, tag):
        if tag == "select" and self.select:
            if not self.picked and self.first_option is not None:
                self.fields.append((self.select, self.first_option))
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.fields.append((self.textarea, self.text.removeprefix("\n")))
            self.textarea = None

    def handle_data(self, data):
        if self.textarea:
            self.text += data

    def data(self, **changes) -> dict:
        posted: dict[str, list[str]] = {}
        for name, value in self.fields:
            if "__prefix__" not in name:
                posted.setdefault(name, []).append(value)
        return {**posted, **{name: [value] for name, value in changes.items()}}


def page(response) -> str:
    return response.content.decode()


def inputs(response) -> dict[str, str]:
    """The value of each input of a page, as a browser shows it."""
    return {name: values[0] for name, values in BrowserForm(page(response)).data().items()}


def form_errors(response) -> str:
    """Every error message of the add or change page, parent form and inlines."""
    found = [str(e) for e in response.context["adminform"].form.errors.values()]
    for inline in response.context["inline_admin_formsets"]:
        found += [str(errors) for errors in inline.formset.errors]
        found.append(str(inline.formset.non_form_errors()))
    return " ".join(found)


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def tiered_plan(world):
    """A reseller A plan as saved by the API: an item priced by tiers, one by unit price."""
    plan = Plan.objects.create(code="a-std", name="Std", owner=world.reseller_a, base_fee=D("10"))
    PlanItem.objects.create(
        plan=plan,
        meter=Meter.objects.get(code="call_minutes"),
        included_quantity=D("1000"),
        unit_price=D("0"),
        tiers=[{"up_to": "5000", "unit_price": "0.05"}, {"up_to": None, "unit_price": "0.04"}],
        thresholds=[80, 100],
    )
    PlanItem.objects.create(
        plan=plan, meter=Meter.objects.get(code="emails"), unit_price=D("1"), limit=D("500")
    )
    return plan


def stored_items(plan) -> list[tuple]:
    return list(
        plan.items.order_by("meter__code").values_list(
            "meter__code",
            "included_quantity",
            "limit",
            "overage_policy",
            "unit_price",
            "tiers",
            "thresholds",
        )
    )


def test_manager_saves_a_plan_with_items_in_one_form(world, users, login):
    client = login(users["manager_a"])
    response = client.post(ADD, plan_form(world.reseller_a, [{}, {"meter": "emails"}]))
    assert response.status_code == 302, page(response)[:3000]
    plan = Plan.objects.get(code="a-admin")
    assert plan.items.count() == 2
    assert plan.items.first().thresholds == [80, 100]
    # The history page shows who changed it; item changes show on the form.
    assert client.get(f"/admin/billing/plan/{plan.pk}/history/").status_code == 200
    change = client.get(f"/admin/billing/plan/{plan.pk}/change/").content.decode()
    assert "alice" in change and "Item changes" in change
    assert f"/admin/billing/plan/{plan.pk}/history/" in change


def test_admin_shows_the_same_validation_messages(world, users, login):
    client = login(users["manager_a"])
    cases = [
        ({"overage_policy": "block"}, "A block item needs a limit"),
        ({"thresholds": "0"}, "between 1 and 1000"),
        ({"tiers": [("5", "1")]}, "last tier must be open"),
        ({"unit_price": "-1"}, "cannot be negative"),
    ]
    for item, message in cases:
        response = client.post(ADD, plan_form(world.reseller_a, [item]))
        assert response.status_code == 200 and message in form_errors(response), message
    response = client.post(ADD, plan_form(world.reseller_a, [{}, {}]))
    assert "call_minutes appears more than once in this plan." in form_errors(response)
    # One item per dimension value is fine; the same value twice is not.
    ocr = {"meter": "processing_units", "dimension": "ocr"}
    response = client.post(ADD, plan_form(world.reseller_a, [ocr, ocr]))
    assert "processing_units (ocr) appears more than once in this plan." in form_errors(response)
    response = client.post(ADD, plan_form(world.reseller_a, [{"charge_model": "package"}]))
    assert "needs a package size" in form_errors(response)
    response = client.post(ADD, plan_form(world.reseller_a, [{"charge_model": "volume"}]))
    assert "A volume item needs tiers" in form_errors(response)
    response = client.post(ADD, plan_form(world.reseller_a, [{}], currency="ABC"))
    assert "ABC is not one of the available choices" in form_errors(response)
    assert not Plan.objects.exists()


def test_blank_item_row_is_ignored_when_adding_a_plan(world, users, login):
    client = login(users["manager_a"])
    form = BrowserForm(page(client.get(ADD)))
    # The page as served: one blank item row, its tier rows blank too.
    assert form.data()["items-TOTAL_FORMS"] == ["1"]
    posted = form.data(code="a-bare", name="Bare", owner=str(world.reseller_a.pk), base_fee="25")
    response = client.post(ADD, posted)
    assert response.status_code == 302, form_errors(response)
    plan = Plan.objects.get(code="a-bare")
    assert (plan.base_fee, plan.currency, plan.items.count()) == (D("25"), "USD", 0)


def test_editing_only_the_description_saves_and_keeps_the_items(tiered_plan, users, login):
    client = login(users["manager_a"])
    url = f"/admin/billing/plan/{tiered_plan.pk}/change/"
    before = stored_items(tiered_plan)
    form = BrowserForm(page(client.get(url)))
    response = client.post(url, form.data(description="Now with emails."))
    assert response.status_code == 302, form_errors(response)
    tiered_plan.refresh_from_db()
    assert tiered_plan.description == "Now with emails."
    assert stored_items(tiered_plan) == before
    # Nothing changed on the items, so nothing was written to their history.
    assert PlanItem.history.filter(plan_id=tiered_plan.pk).count() == 2


def test_plans_are_sold_by_the_platform_partners_and_resellers_only(world, users, login, api):
    client = login(users["manager_a"])
    for tenant, kind in ((world.org_a, "organization"), (world.agent_a, "agent")):
        response = client.post(ADD, plan_form(tenant, [{}]))
        assert response.status_code == 200
        message = (
            f"Plans are sold by the platform (no owner), a partner or a reseller; "
            f"{tenant.name} is an {kind}."
        )
        assert response.context["adminform"].form.errors["owner"] == [message]
    assert not Plan.objects.exists()
    assert client.post(ADD, plan_form(world.reseller_a, [{}])).status_code == 302
    operator = login(users["superuser"])
    assert operator.post(ADD, plan_form(None, [{}], code="platform")).status_code == 302
    assert operator.post(ADD, plan_form(world.partner, [{}], code="p-w")).status_code == 302
    assert {p.code: p.owner for p in Plan.objects.all()} == {
        "a-admin": world.reseller_a,
        "platform": None,
        "p-w": world.partner,
    }

    # The API answers with the same rule, on the owner field.
    body = {
        "code": "org-plan",
        "name": "Org",
        "owner": "org-a",
        "currency": "USD",
        "base_fee": "1",
        "items": [],
    }
    response = api(users["manager_a"]).post("/api/v1/plans/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "field": "owner",
            "message": (
                "Plans are sold by the platform (no owner), a partner or a reseller; "
                "Org A is an organization."
            ),
        }
    ]
    assert not Plan.objects.filter(code="org-plan").exists()


def autocomplete(client, model: str, field: str, term: str = "") -> list[dict]:
    query = {"app_label": "billing", "model_name": model, "field_name": field, "term": term}
    response = client.get(reverse("admin:accounts_tenant_autocomplete"), query)
    assert response.status_code == 200
    return response.json()["results"]


def test_tenant_autocompletes_label_kind_and_path_within_scope(world, users, login):
    client = login(users["manager_a"])
    owners = {r["text"] for r in autocomplete(client, "plan", "owner")}
    # Only tenants that sell, and the path stops where the user's view does.
    assert owners == {"Reseller A (reseller)"}
    tenants = {r["text"] for r in autocomplete(client, "subscription", "tenant", "org-a")}
    assert tenants == {"Reseller A › Org A (organization)"}
    by_name = {r["text"] for r in autocomplete(client, "subscription", "tenant", "Agent")}
    assert by_name == {"Reseller A › Org A › Agent A (agent)"}
    assert autocomplete(client, "subscription", "tenant", "org-b") == []
    operator = login(users["superuser"])
    assert {r["text"] for r in autocomplete(operator, "plan", "owner")} == {
        "Partner P (partner)",
        "Partner P › Reseller A (reseller)",
        "Reseller B (reseller)",
    }
    # The chosen tenant is shown with the same label when the form comes back.
    response = client.post(SUBSCRIBE, {"tenant": world.org_a.pk, "plan": "", "starts_on": ""})
    assert "Reseller A › Org A (organization)" in page(response)
    assert "admin-autocomplete" in page(response)


def tenant_relations():
    """Every foreign key to a tenant an autocomplete request may name."""
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if field.concrete and field.is_relation and field.related_model is Tenant:
                yield pytest.param(model, field.name, id=f"{model._meta.label}.{field.name}")


@pytest.mark.parametrize(("model", "field_name"), list(tenant_relations()))
def test_tenant_autocomplete_shows_nothing_of_another_reseller(
    world, users, login, model, field_name
):
    client = login(users["manager_a"])
    theirs = {str(t.pk) for t in (world.reseller_b, world.org_b, world.agent_b)}
    for term in ("", "b", "Reseller B", "org-b", "agent"):
        query = {
            "app_label": model._meta.app_label,
            "model_name": model._meta.model_name,
            "field_name": field_name,
            "term": term,
        }
        response = client.get(reverse("admin:accounts_tenant_autocomplete"), query)
        assert response.status_code == 200, term
        results = response.json()["results"]
        assert not {r["id"] for r in results} & theirs, term
        assert not any("Reseller B" in r["text"] or "Org B" in r["text"] for r in results)


def test_tenant_autocomplete_answers_for_tenant_fields_only(users, login):
    client = login(users["manager_a"])
    query = {"app_label": "billing", "model_name": "subscription", "field_name": "plan"}
    assert client.get(reverse("admin:accounts_tenant_autocomplete"), query).status_code == 403
    client.logout()
    query["field_name"] = "tenant"
    response = client.get(reverse("admin:accounts_tenant_autocomplete"), query)
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_unit_price_is_optional_with_tiers_and_required_without(world, users, login, api):
    client = login(users["manager_a"])
    response = client.post(ADD, plan_form(world.reseller_a, [{"unit_price": ""}]))
    assert response.status_code == 200
    assert "Give a unit price for the overage, or tiers to price it." in form_errors(response)
    response = client.post(ADD, plan_form(world.reseller_a, [{"unit_price": "", "tiers": TIERS}]))
    assert response.status_code == 302, form_errors(response)
    item = Plan.objects.get(code="a-admin").items.get()
    assert item.unit_price is None
    assert item.tiers == [
        {"up_to": "5000", "unit_price": "0.05", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.04", "flat_fee": "0"},
    ]

    # The API holds the same rule.
    item = {"meter": "emails", "unit_price": None}
    body = {"code": "a-api", "name": "A", "owner": "reseller-a", "items": [item]}
    response = api(users["manager_a"]).post("/api/v1/plans/", body, format="json")
    assert response.status_code == 400
    assert {
        "field": "items[0].unit_price",
        "message": "Give a unit price for the overage, or tiers to price it.",
    } in (response.json()["errors"])
    item["tiers"] = [{"up_to": None, "unit_price": "0.5"}]
    response = api(users["manager_a"]).post("/api/v1/plans/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["items"][0]["unit_price"] is None


def test_tier_rows_are_read_in_order_and_blank_rows_skipped(world, users, login):
    data = plan_form(world.reseller_a, [{"unit_price": ""}])
    # Rows 0, 3 and 7 filled (a script numbers new rows on), rows 1 and 2 left blank.
    rows = {0: ("100", "0.3"), 1: ("", ""), 2: ("", ""), 3: ("1000", "0.2"), 7: ("", "0.1")}
    for r, (up_to, price) in rows.items():
        data.update({f"items-0-tiers-{r}-up_to": up_to, f"items-0-tiers-{r}-unit_price": price})
    response = login(users["manager_a"]).post(ADD, data)
    assert response.status_code == 302, form_errors(response)
    assert Plan.objects.get().items.get().tiers == [
        {"up_to": "100", "unit_price": "0.3", "flat_fee": "0"},
        {"up_to": "1000", "unit_price": "0.2", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.1", "flat_fee": "0"},
    ]


def test_admin_saves_dimension_items_flat_fees_and_a_minimum(world, users, login):
    items = [
        {"meter": "processing_units", "dimension": "ocr", "charge_model": "volume",
         "unit_price": "", "tiers": [("10", "1", "5"), ("", "0.5", "20")]},
        {"meter": "processing_units", "charge_model": "package", "package_size": "25",
         "unit_price": "3"},
    ]  # fmt: skip
    data = plan_form(world.reseller_a, items, minimum_commitment="250")
    response = login(users["manager_a"]).post(ADD, data)
    assert response.status_code == 302, form_errors(response)
    plan = Plan.objects.get(code="a-admin")
    assert plan.minimum_commitment == D("250")
    ocr, rest = plan.items.get(dimension="ocr"), plan.items.get(dimension=None)
    assert (ocr.charge_model, ocr.tiers) == (
        "volume",
        [
            {"up_to": "10", "unit_price": "1", "flat_fee": "5"},
            {"up_to": None, "unit_price": "0.5", "flat_fee": "20"},
        ],
    )
    assert (rest.charge_model, rest.package_size, rest.unit_price) == ("package", 25, D("3"))


def test_tier_rows_report_every_row_at_fault(world, users, login):
    client = login(users["manager_a"])
    bad_cells = [("abc", "0.05"), ("1000", ""), ("2000", "-1"), ("", "0.000000001")]
    response = client.post(ADD, plan_form(world.reseller_a, [{"tiers": bad_cells}]))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.forms[0].errors["tiers"]
    assert errors == [
        "Tier 1 up to must be a number, not 'abc'.",
        "Tier 2: enter a unit price.",
        "Tier 3 unit price cannot be negative.",
        "Tier 4 unit price has at most 8 decimal places.",
    ]
    # The rows come back as typed, for the seller to correct.
    shown = inputs(response)
    assert [shown[f"items-0-tiers-{r}-up_to"] for r in range(4)] == ["abc", "1000", "2000", ""]
    assert shown["items-0-tiers-3-unit_price"] == "0.000000001"
    # Rules between rows are the plans module's, naming the row too.
    cases = [
        ([("5000", "0.05"), ("100", "0.04"), ("", "0.03")], "Tier 2: up_to must be greater"),
        ([("", "0.05"), ("", "0.04")], "Tier 1: only the last tier may be open"),
        ([("1e15", "0.05"), ("", "0.04")], "Tier 1 up to must be at most 100,000,000,000,000"),
        ([("", "1e999999")], "Tier 1 unit price must be at most 1,000,000"),
        ([("", "NaN")], "Tier 1 unit price must be a finite number"),
    ]
    for tiers, message in cases:
        response = client.post(ADD, plan_form(world.reseller_a, [{"tiers": tiers}]))
        assert response.status_code == 200 and message in form_errors(response), message
    assert not Plan.objects.exists()


def test_tier_rows_take_text_only_by_the_request_rules(world, users, login):
    client = login(users["manager_a"])
    nul = plan_form(world.reseller_a, [{"tiers": [("", "1\x00")]}])
    assert client.post(ADD, nul).status_code == 400
    # The old JSON text area is gone: a posted JSON document is never parsed.
    deep = plan_form(world.reseller_a, [{}], **{"items-0-tiers": "[" * 100_000 + "]" * 100_000})
    response = client.post(ADD, deep)
    assert response.status_code == 302
    assert Plan.objects.get().items.get().tiers == []


def test_mid_month_plan_change_in_the_admin_is_the_apis(world, users, login, api):
    basic = Plan.objects.create(code="a-basic", name="Basic", owner=world.reseller_a)
    pro = Plan.objects.create(code="a-pro", name="Pro", owner=world.reseller_a, base_fee=D("99"))
    org_c = world.org_a.__class__.objects.create(
        name="Org C", slug="org-c", kind="organization", parent=world.reseller_a
    )
    for org in (world.org_a, org_c):
        Subscription.objects.create(tenant=org, plan=basic, starts_on=date(2026, 11, 1))

    client = login(users["manager_a"])
    response = client.post(
        SUBSCRIBE, {"tenant": world.org_a.pk, "plan": pro.pk, "starts_on": "2026-11-15"}
    )
    assert response.status_code == 302, page(response)
    assert (
        "Org A's subscription to Basic (a-basic) ended on 2026-11-14; Pro (a-pro) starts "
        "2026-11-15; base fees prorated by day." in flash(response)
    )
    body = {"tenant": "org-c", "plan": "a-pro", "starts_on": "2026-11-15"}
    assert api(users["manager_a"]).post("/api/v1/subscriptions/", body).status_code == 201

    def subscriptions(org):
        return list(
            Subscription.objects.filter(tenant=org)
            .order_by("starts_on")
            .values_list("plan__code", "starts_on", "ends_on")
        )

    expected = [
        ("a-basic", date(2026, 11, 1), date(2026, 11, 14)),
        ("a-pro", date(2026, 11, 15), None),
    ]
    assert subscriptions(world.org_a) == subscriptions(org_c) == expected
    # Who made it is in the history, as for any admin change.
    added = Subscription.objects.get(tenant=world.org_a, plan=pro)
    assert added.history.get().history_user == users["manager_a"]


def test_a_plan_change_racing_another_saves_nothing_and_says_so(world, users, login):
    """Between the form's check and the save, another change opens a subscription
    for the same organization: the save is refused in words, nothing is kept."""
    basic = Plan.objects.create(code="a-basic", name="Basic", owner=world.reseller_a)
    pro = Plan.objects.create(code="a-pro", name="Pro", owner=world.reseller_a)
    Subscription.objects.create(tenant=world.org_a, plan=basic, starts_on=date(2026, 11, 1))
    ended, raced = [], []

    def open_another(sender, instance, **kwargs):
        # subscribe() ends the old subscription twice: in the form's check (rolled
        # back), then in the save; the other change lands just before the second.
        if instance.ends_on is not None and instance.plan == basic:
            ended.append(instance.pk)
            if len(ended) == 2:
                raced.append(Subscription.objects.create(
                    tenant=world.org_a, plan=basic, starts_on=date(2026, 11, 20)))  # fmt: skip

    post_save.connect(open_another, sender=Subscription)
    try:
        response = login(users["manager_a"]).post(
            SUBSCRIBE, {"tenant": world.org_a.pk, "plan": pro.pk, "starts_on": "2026-11-15"}
        )
    finally:
        post_save.disconnect(open_another, sender=Subscription)
    assert raced and response.status_code == 302
    assert any("nothing was saved" in message for message in flash(response))
    assert list(Subscription.objects.values_list("plan__code", "starts_on", "ends_on")) == [
        ("a-basic", date(2026, 11, 1), None)
    ]


def test_plan_change_on_the_first_says_nothing_is_prorated(world, users, login):
    basic = Plan.objects.create(code="a-basic", name="Basic", owner=world.reseller_a)
    pro = Plan.objects.create(code="a-pro", name="Pro", owner=world.reseller_a)
    Subscription.objects.create(tenant=world.org_a, plan=basic, starts_on=date(2026, 10, 3))
    client = login(users["manager_a"])
    response = client.post(
        SUBSCRIBE, {"tenant": world.org_a.pk, "plan": pro.pk, "starts_on": "2026-12-01"}
    )
    assert (
        "Org A's subscription to Basic (a-basic) ended on 2026-11-30; Pro (a-pro) starts "
        "2026-12-01; the change falls on the 1st, so no base fee is prorated." in (flash(response))
    )


def test_subscription_refusals_are_the_services_in_words(world, users, login):
    plan = Plan.objects.create(code="a-basic", name="Basic", owner=world.reseller_a)
    running = Subscription.objects.create(
        tenant=world.org_a, plan=plan, starts_on=date(2026, 11, 10)
    )
    client = login(users["manager_a"])
    # Starting on the running one's first day cannot end it the day before: the overlap
    # and the one-open-subscription constraint both answer, in words.
    response = client.post(
        SUBSCRIBE, {"tenant": world.org_a.pk, "plan": plan.pk, "starts_on": "2026-11-10"}
    )
    assert response.status_code == 200
    text = form_errors(response)
    assert "Org A already has a subscription to a-basic from 2026-11-10 (open-ended)" in text
    assert "This tenant already has a subscription without an end date" in text
    # Reopening an ended subscription while another runs.
    ended = Subscription.objects.create(
        tenant=world.org_a, plan=plan, starts_on=date(2026, 1, 1), ends_on=date(2026, 1, 31)
    )
    reopened = client.post(f"/admin/billing/subscription/{ended.pk}/change/", {"ends_on": ""})
    assert reopened.status_code == 200
    assert "one active subscription at a time" in form_errors(reopened)
    for shown in (page(response), page(reopened)):
        assert "subscription_one_open_per_tenant" not in shown and "Constraint" not in shown
    assert Subscription.objects.filter(ends_on__isnull=True).get() == running


PROJECT_APPS = ("accounts", "metering", "billing", "reports")


def constraint_messages():
    for model in apps.get_models():
        if model._meta.app_label in PROJECT_APPS:
            for constraint in model._meta.constraints:
                yield pytest.param(model, constraint, id=f"{model.__name__}.{constraint.name}")


@pytest.mark.parametrize(("model", "constraint"), list(constraint_messages()))
def test_no_constraint_speaks_its_name(model, constraint):
    assert isinstance(constraint, (UniqueConstraint, CheckConstraint))
    message = str(constraint.get_violation_error_message())
    if message == str(constraint.default_violation_error_message) % {"name": constraint.name}:
        # Only a plain unique constraint falls back to Django's own sentence
        # ("Membership with this User and Tenant already exists.").
        assert isinstance(constraint, UniqueConstraint)
        assert constraint.fields and constraint.condition is None
        return
    assert constraint.name not in message and "Constraint" not in message


def test_decimals_show_as_people_write_them(tiered_plan, world, users, login):
    client = login(users["manager_a"])
    listing = page(client.get("/admin/billing/plan/"))
    assert ">10.00<" in listing and "10.000" not in listing
    response = client.get(f"/admin/billing/plan/{tiered_plan.pk}/change/")
    shown = inputs(response)
    expected = {
        "base_fee": "10.00",
        "items-0-included_quantity": "1000",
        "items-0-limit": "",
        "items-0-unit_price": "0.00",
        "items-0-tiers-0-up_to": "5000",
        "items-0-tiers-0-unit_price": "0.05",
        "items-0-tiers-1-up_to": "",
        "items-0-tiers-1-unit_price": "0.04",
        "items-0-thresholds": "80, 100",
        "items-1-included_quantity": "0",
        "items-1-unit_price": "1.00",
        "items-1-limit": "500",
        # The blank row for a new item starts without a price.
        "items-2-unit_price": "",
    }
    assert {name: shown[name] for name in expected} == expected
    for raw in ("0E-8", "1.00000000", "1000.000000", "10.000", "0.05000000"):
        assert raw not in page(response), raw
    # A currency without minor units, and statements.
    yen = Plan.objects.create(
        code="a-yen", name="Yen", owner=world.reseller_a, currency="JPY", base_fee=D("1200")
    )
    assert inputs(client.get(f"/admin/billing/plan/{yen.pk}/change/"))["base_fee"] == "1200"
    Statement.objects.create(
        tenant=world.org_a,
        period=date(2026, 11, 1),
        currency="USD",
        base_fee=D("1"),
        usage_amount=D("2.5"),
        total=D("3.5"),
        as_of="2026-11-20T00:00:00Z",
    )
    statements = page(client.get("/admin/billing/statement/"))
    assert ">3.50<" in statements and ">2.50<" in statements and "3.500" not in statements


def test_currency_is_chosen_from_iso_4217(world, users, login):
    client = login(users["manager_a"])
    field = client.get(ADD).context["adminform"].form.fields["currency"]
    codes = dict(field.choices)
    assert field.initial == "USD" and codes["EUR"] == "EUR — Euro" and "JPY" in codes
    assert "XYZ" not in codes and "DEM" not in codes  # not a currency / no longer in use
    response = client.post(ADD, plan_form(world.reseller_a, [], currency="EUR"))
    assert response.status_code == 302 and Plan.objects.get().currency == "EUR"


def test_every_plan_item_and_subscription_field_is_explained(users, login):
    for model in (Plan, PlanItem, Subscription):
        for field in model._meta.get_fields():
            if field.concrete and field.editable and not field.primary_key:
                assert field.help_text, f"{model.__name__}.{field.name}"
    client = login(users["manager_a"])
    add = page(client.get(ADD))
    for text in (
        "Free units per month before overage",
        "per month, prorated by day",
        "Block: the overage is billed up to the limit",
    ):
        assert text in add
    assert "runs until ended or replaced" in page(client.get(SUBSCRIBE))


def test_history_reads_as_people_write_it(tiered_plan, world, users, login):
    client = login(users["manager_a"])
    url = f"/admin/billing/plan/{tiered_plan.pk}/change/"
    form = BrowserForm(page(client.get(url)))
    changes = {
        "base_fee": "12.5",
        "customer": str(world.org_a.pk),
        "items-1-limit": "",
        "items-1-unit_price": "0.25",
        "items-0-tiers-1-up_to": "9000",
        "items-0-tiers-2-unit_price": "0.03",
    }
    assert client.post(url, form.data(**changes)).status_code == 302
    history = page(client.get(f"/admin/billing/plan/{tiered_plan.pk}/history/"))
    assert "10.00" in history and "12.50" in history and "—" in history
    items = page(client.get(url))
    assert "up to 5000 at 0.05; up to 9000 at 0.04; above at 0.03" in items
    assert "up to 5000 at 0.05; above at 0.04" in items and "80%, 100%" in items
    for text in (history, items):
        assert "None" not in text and "Decimal(" not in text and "0E-8" not in text


def test_reseller_reads_its_wholesale_plan(world, users, login):
    wholesale = Plan.objects.create(
        code="p-wholesale",
        name="Wholesale",
        owner=world.partner,
        customer=world.reseller_a,
        base_fee=D("500"),
    )
    PlanItem.objects.create(
        plan=wholesale, meter=Meter.objects.get(code="emails"), unit_price=D("0.0004")
    )
    PlanItem.objects.create(
        plan=wholesale,
        meter=Meter.objects.get(code="call_minutes"),
        unit_price=None,
        tiers=[{"up_to": "20000", "unit_price": "0.004"}, {"up_to": None, "unit_price": "0.003"}],
    )
    Subscription.objects.create(tenant=world.reseller_a, plan=wholesale, starts_on=date(2026, 1, 1))
    client = login(users["manager_a"])
    response = client.get(f"/admin/billing/plan/{wholesale.pk}/change/")
    assert response.status_code == 200 and not response.context["has_change_permission"]
    text = page(response)
    for shown in ("500.00", "0.0004", "up to 20000 at 0.004; above at 0.003"):
        assert shown in text, shown
    assert "0.00040000" not in text and "500.000" not in text and "Item changes" not in text
    assert 'name="base_fee"' not in text and "data-tier-rows" not in text
    assert f"/admin/billing/plan/{wholesale.pk}/history/" not in text
    assert client.post(f"/admin/billing/plan/{wholesale.pk}/change/", {}).status_code == 403


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
    form = client.get(SUBSCRIBE).context["adminform"].form
    assert theirs not in form.fields["plan"].queryset


def test_duplicate_action_makes_a_custom_plan_for_one_customer(world, users, login):
    plan = Plan.objects.create(code="a-std", name="Std", owner=world.reseller_a)
    PlanItem.objects.create(plan=plan, meter=Meter.objects.get(code="emails"), unit_price=D("1"))
    client = login(users["manager_a"])
    action = {"action": "duplicate_for_customer", "_selected_action": [plan.pk]}
    response = client.post("/admin/billing/plan/", action)
    assert response.status_code == 200 and "Create custom plan" in page(response)
    assert "Reseller A › Org A (organization)" in page(response)
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
        SUBSCRIBE,
        {"tenant": world.org_a.pk, "plan": plan.pk, "starts_on": "2026-11-01", "ends_on": ""},
    )
    assert response.status_code == 302
    subscription = Subscription.objects.get()
    assert response.url == "/admin/billing/subscription/"
    assert subscription.starts_on == date(2026, 11, 1)
    assert subscription.history.get().history_user == users["manager_a"]
    # Another reseller's staff get 404 on it.
    other = login(users["manager_b"])
    assert other.get(f"/admin/billing/subscription/{subscription.pk}/change/").status_code == 404
