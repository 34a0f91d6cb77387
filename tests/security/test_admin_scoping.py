"""The admin shows reseller A's staff nothing of reseller B: every changelist, list
filter, autocomplete, raw-id popup and form choice list. Generated from the admin
registry and the model graph, so a new admin or relation is checked unlisted."""

import pytest
from django import forms
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import RelatedFieldListFilter
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from accounts.models import ApiKey
from accounts.scoped_admin import ScopedInlineMixin, TenantScopedAdminMixin, scoped_list_filter
from billing.admin import SubscriptionAdmin
from billing.models import Plan, RollupRun, Subscription
from metering.models import Meter, UsageEvent
from tests.security.two_resellers import b_markers_in, two_resellers
from tests.stored import skip_in_clickhouse

PROJECT_APPS = {"accounts", "metering", "billing", "reports"}
# Registered project models that belong to no tenant, and why.
NOT_TENANT_OWNED = {
    Meter: "the platform's meter catalog, the same for every staff member",
    RollupRun: "platform operations, shown to superusers only",
}
REGISTRY = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
ADMINS = [pytest.param(model, model_admin, id=model._meta.label) for model, model_admin in REGISTRY]
PROJECT_ADMINS = [p for p in ADMINS if p.values[0]._meta.app_label in PROJECT_APPS]


def relation_fields():
    """Every relation an autocomplete request may name: Django answers for any foreign
    key whose target model is registered, whether an admin lists it or not."""
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if not (field.concrete and field.is_relation):
                continue
            if admin.site.is_registered(field.related_model):
                yield pytest.param(model, field.name, id=f"{model._meta.label}.{field.name}")


@pytest.fixture
def data(world, users):
    return two_resellers(world, users)


@pytest.fixture
def staff_a(client, users):
    client.force_login(users["manager_a"])
    return client


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def body(response) -> str:
    return "" if response.streaming else response.content.decode()


def forms_on(response) -> list:
    """The form of an add/change page and every form of its inlines."""
    found = [response.context["adminform"].form]
    for inline in response.context.get("inline_admin_formsets", []):
        found += [*inline.formset.forms, inline.formset.empty_form]
    return found


def assert_choices_hide_b(form, data) -> None:
    for name, field in form.fields.items():
        # An inline row's hidden id: Django looks rows up in the formset's own queryset.
        row_id = name == form._meta.model._meta.pk.name and field.widget.is_hidden
        if isinstance(field, forms.ModelChoiceField) and not row_id:
            offered = set(field.queryset.values_list("pk", flat=True))
            assert not offered & data.b_pks(field.queryset.model), name


@pytest.mark.parametrize(("model", "model_admin"), PROJECT_ADMINS)
def test_every_project_admin_stands_on_the_scoped_base(data, model, model_admin):
    if model is UsageEvent:
        skip_in_clickhouse("the events admin lists the relational table")
    assert isinstance(model_admin, TenantScopedAdminMixin)
    assert all(issubclass(inline, ScopedInlineMixin) for inline in model_admin.inlines)
    # Reseller B has one of every tenant-owned model, so the checks below bite.
    assert model in NOT_TENANT_OWNED or data.b.get(model), f"add {model.__name__} to two_resellers"


@pytest.mark.parametrize(("model", "model_admin"), ADMINS)
def test_changelists_and_their_filters_show_nothing_of_b(data, staff_a, model, model_admin):
    url = admin_url(model, "changelist")
    # Plain, with facet counts, and as the raw-id popup a foreign key opens.
    for query in ("", "?_facets=1", "?_popup=1&_to_field=id"):
        response = staff_a.get(url + query)
        assert response.status_code in (200, 302, 403), query
        assert not b_markers_in(body(response)), query
        if response.status_code != 200:
            continue
        changelist = response.context["cl"]
        assert not {obj.pk for obj in changelist.result_list} & data.b_pks(model)
        for spec in changelist.filter_specs:
            shown = " ".join(str(choice["display"]) for choice in spec.choices(changelist))
            assert not b_markers_in(shown), spec.title
            if isinstance(spec, RelatedFieldListFilter):
                offered = {pk for pk, _ in spec.lookup_choices}
                assert not offered & data.b_pks(spec.field.related_model), spec.title


def own_objects(data, model) -> list:
    if model in NOT_TENANT_OWNED:
        return list(model._default_manager.all()[:1])
    return data.a.get(model, [])


@pytest.mark.parametrize(("model", "model_admin"), ADMINS)
def test_add_and_change_forms_offer_nothing_of_b(data, staff_a, model, model_admin):
    urls = [admin_url(model, "add")]
    urls += [admin_url(model, "change", obj.pk) for obj in own_objects(data, model)]
    for url in urls:
        response = staff_a.get(url)
        assert response.status_code in (200, 302, 403), url
        assert not b_markers_in(body(response)), url
        if response.status_code == 200:
            for form in forms_on(response):
                assert_choices_hide_b(form, data)


@pytest.mark.parametrize(("model", "model_admin"), ADMINS)
def test_b_objects_answer_404_in_every_admin(data, staff_a, model, model_admin):
    scoped = isinstance(model_admin, TenantScopedAdminMixin)
    for obj in data.b.get(model, []):
        for view in ("change", "history"):
            response = staff_a.get(admin_url(model, view, obj.pk))
            # Admins outside the project answer 403 to staff without model permissions.
            assert response.status_code == (404 if scoped else 403), view
            assert not b_markers_in(body(response))
        response = staff_a.post(admin_url(model, "change", obj.pk), {"name": "x"})
        assert response.status_code in (403, 404)
        # Deleting is for superusers only: refused before the object is looked up.
        response = staff_a.get(admin_url(model, "delete", obj.pk))
        assert response.status_code in (403, 404) and not b_markers_in(body(response))


@pytest.mark.parametrize(("model", "field_name"), list(relation_fields()))
def test_autocomplete_offers_nothing_of_b(data, staff_a, model, field_name):
    remote = model._meta.get_field(field_name).related_model
    b_ids = {str(pk) for pk in data.b_pks(remote)}
    for term in ("", "b", "bravo", "Reseller B", "org-b"):
        query = {"app_label": model._meta.app_label, "model_name": model._meta.model_name,
                 "field_name": field_name, "term": term}  # fmt: skip
        response = staff_a.get(reverse("admin:autocomplete"), query)
        assert response.status_code in (200, 403, 404), term
        if response.status_code == 200:
            results = response.json()["results"]
            assert not {r["id"] for r in results} & b_ids, term
            assert not b_markers_in(" ".join(r["text"] for r in results)), term


def test_subscription_filter_by_plan_lists_only_plans_the_user_may_see(data, staff_a):
    response = staff_a.get("/admin/billing/subscription/")
    changelist = response.context["cl"]
    [by_plan] = [spec for spec in changelist.filter_specs if spec.field_path == "plan"]
    offered = {label for _, label in by_plan.lookup_choices}
    assert offered == {str(plan) for plan in data.a[Plan]}
    assert "bravo" not in response.content.decode().lower()


def test_plans_in_the_admin_are_the_plans_of_the_api(data, users, staff_a, api):
    listed = {p.code for p in staff_a.get("/admin/billing/plan/").context["cl"].result_list}
    served = api(users["manager_a"]).get("/api/v1/plans/").json()["results"]
    assert listed == {p["code"] for p in served} == {"alpha-wholesale", "alpha-retail",
                                                      "alpha-custom"}  # fmt: skip
    # The wholesale plan (the partner's, reseller A is subscribed to it) is read-only,
    # and who edited it stays the partner's record.
    wholesale = Plan.objects.get(code="alpha-wholesale")
    page = staff_a.get(admin_url(Plan, "change", wholesale.pk))
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert "Item changes" not in page.content.decode()
    assert staff_a.post(admin_url(Plan, "change", wholesale.pk), {"name": "x"}).status_code == 403
    assert staff_a.get(admin_url(Plan, "history", wholesale.pk)).status_code == 404
    # Autocomplete offers the same plans.
    query = {"app_label": "billing", "model_name": "subscription", "field_name": "plan"}
    offered = staff_a.get(reverse("admin:autocomplete"), query).json()["results"]
    assert {r["text"] for r in offered} == {str(plan) for plan in data.a[Plan]}


def key_form(tenant, *scopes, **fields) -> dict:
    return {"name": "fixer", "tenant": tenant.pk, "scopes": list(scopes), "expiry_date": "",
            **fields}  # fmt: skip


def test_only_a_superuser_grants_the_correct_scope(world, users, login):
    add = admin_url(ApiKey, "add")
    response = login(users["manager_a"]).post(add, key_form(world.org_a, "read", "correct"))
    assert response.status_code == 200
    assert "Only a platform operator" in response.content.decode()
    assert not ApiKey.objects.filter(name="fixer").exists()

    assert login(users["superuser"]).post(add, key_form(world.org_a, "correct")).status_code == 302
    key = ApiKey.objects.get(name="fixer")
    assert key.scopes == ["correct"]

    # Reseller staff may still rename or revoke the key, but not move the scope elsewhere.
    staff, change = login(users["manager_a"]), admin_url(ApiKey, "change", key.pk)
    moved = staff.post(change, key_form(world.agent_a, "correct"))
    assert moved.status_code == 200 and "Only a platform operator" in moved.content.decode()
    kept = staff.post(change, key_form(world.org_a, "correct", name="fixer-old", revoked="on"))
    assert kept.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.tenant, key.revoked) == ("fixer-old", world.org_a, True)


def test_raw_id_field_never_names_an_object_out_of_scope(data, world, rf, users):
    class RawIdSubscriptionAdmin(SubscriptionAdmin):
        raw_id_fields = ("tenant", "plan")

    request = rf.get("/")
    request.user = users["manager_a"]
    form_class = RawIdSubscriptionAdmin(Subscription, admin.site).get_form(request)
    bravo = Plan.objects.get(code="bravo-retail")
    form = form_class(data={"tenant": world.org_b.pk, "plan": bravo.pk, "starts_on": "2026-01-01"})
    assert not form.is_valid() and {"tenant", "plan"} <= set(form.errors)
    assert not b_markers_in(str(form["tenant"]) + str(form["plan"]))
    own = form_class(data={"tenant": world.org_a.pk, "plan": data.a[Plan][0].pk})
    assert "Org A" in str(own["tenant"])
    request.user = users["superuser"]
    operator_form = RawIdSubscriptionAdmin(Subscription, admin.site).get_form(request)
    assert "Org B" in str(operator_form(data={"tenant": world.org_b.pk})["tenant"])


def test_a_filter_listing_every_tenant_is_refused():
    class EveryTenant(RelatedFieldListFilter):
        pass

    assert scoped_list_filter("plan")[0] == "plan"
    with pytest.raises(ImproperlyConfigured):
        scoped_list_filter(("tenant", EveryTenant))
