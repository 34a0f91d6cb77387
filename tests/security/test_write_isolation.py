"""Nobody changes another tenant's numbers: each test is one way money was lost,
moved or frozen through a write path, tried as a user with a login would."""

from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.models import ApiKey, PlatformPrincipal, Tenant
from billing.alerts import check_alerts
from billing.models import Plan, PlanItem, Statement, TenantFailure, UsageAlert
from billing.periods import month_of
from billing.plans import subscribe
from billing.statements import finalize_closed_periods, refresh_drafts
from metering.ingestion import ingest_events
from metering.models import Meter
from tests.factories import make_tenant, make_user
from tests.stored import stored_event, stored_events

EVENTS = "/api/v1/events/"


def call(event_id, tenant, quantity="1", **extra):
    return {
        "event_id": event_id,
        "tenant": tenant,
        "meter": "call_minutes",
        "quantity": quantity,
        **extra,
    }


def meter_pk(code):
    return Meter.objects.get(code=code).pk


@pytest.fixture
def key_client(api):
    def client_for(key):
        client = api()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return client_for


# 1. One tenant swallowing another's events -------------------------------------------


def test_the_same_event_id_on_two_tenants_is_two_events(world, users, api):
    reseller_b, reseller_a = api(users["manager_b"]), api(users["manager_a"])
    first = reseller_b.post(EVENTS, call("guessable-1", "agent-b"), format="json")
    assert first.json() == {"accepted": 1, "duplicates": 0}
    # The answer tells A nothing about B's ids: its own event is simply accepted.
    second = reseller_a.post(EVENTS, call("guessable-1", "agent-a"), format="json")
    assert second.json() == {"accepted": 1, "duplicates": 0}
    assert len(stored_events(event_id="guessable-1")) == 2
    # The same id again for the same tenant is still a duplicate.
    again = reseller_a.post(EVENTS, call("guessable-1", "agent-a"), format="json")
    assert again.json() == {"accepted": 0, "duplicates": 1}


def test_one_batch_may_repeat_an_id_across_tenants_not_within_one(world):
    result = ingest_events(
        [call("x", "agent-a"), call("x", "agent-b"), call("x", "agent-a")],
        principal=PlatformPrincipal(),
    )
    assert (result.accepted, result.duplicates) == (2, 1)


# 2. One tenant capturing another's events ---------------------------------------------


def test_external_id_cannot_take_another_tenants_slug(world, users, api):
    response = api(users["manager_a"]).patch(
        "/api/v1/tenants/agent-a/", {"external_id": "agent-b"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "external_id"
    assert "not available" in response.json()["errors"][0]["message"]
    world.agent_a.refresh_from_db()
    assert world.agent_a.external_id is None


def test_slug_cannot_take_another_tenants_external_id(world, users, api):
    response = api(users["manager_b"]).post(
        "/api/v1/tenants/",
        {"name": "Clash", "slug": "ext-org-a", "kind": "agent", "parent": "org-b"},
        format="json",
    )
    assert response.status_code == 201  # slugs are lowercase: EXT-ORG-A is another value
    world.org_a.external_id = "clash-slug"
    world.org_a.save()
    response = api(users["manager_b"]).post(
        "/api/v1/tenants/",
        {"name": "Clash", "slug": "clash-slug", "kind": "agent", "parent": "org-b"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": "slug",
        "message": "This slug is not available; choose another.",
    }


def test_every_write_path_meets_the_namespace(world):
    # Code paths that skip forms (demo loaders, commands) go through save().
    with pytest.raises(ValidationError):
        make_tenant("agent", world.org_a, slug="sneaky", external_id="agent-b")
    Tenant.objects.filter(pk=world.org_a.pk).update(external_id="zed")
    with pytest.raises(ValidationError):
        Tenant(name="X", slug="zed", kind="agent", parent=world.org_b).save()
    with pytest.raises(ValidationError):
        make_tenant("agent", world.org_b, slug="fine", external_id="org-a")
    # A tenant's own slug may double as its external id.
    assert make_tenant("agent", world.org_b, slug="own", external_id="own").pk


def test_a_reference_resolving_twice_is_never_attributed_to_the_wrong_tenant(world):
    # Data from before the namespace rule: the slug wins, the victim keeps its events.
    Tenant.objects.filter(pk=world.agent_a.pk).update(external_id="agent-b")
    ingest_events([call("e1", "agent-b")], principal=PlatformPrincipal())
    assert stored_event().tenant_id == world.agent_b.pk


def test_the_migration_lists_namespace_collisions(world):
    import importlib

    from django.apps import apps

    migration = importlib.import_module(
        "accounts.migrations.0003_tenant_namespace_and_correct_scope"
    )
    Tenant.objects.filter(pk=world.agent_a.pk).update(external_id="agent-b")
    with pytest.raises(RuntimeError, match="'agent-b' of tenant #"):
        migration.refuse_namespace_collisions(apps, None)


# 3. The billed party shrinking its own bill ---------------------------------------------


def test_a_reseller_manager_cannot_correct_its_own_usage(world, users, api):
    correction = call("fix-1", "reseller-a", "-19000", attributes={"reason": "refund"})
    response = api(users["manager_a"]).post(EVENTS, correction, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "quantity"
    assert not stored_events()


def test_only_superusers_grant_the_correct_scope(world, users, client):
    client.force_login(users["manager_a"])
    response = client.post(
        "/admin/accounts/apikey/add/",
        {"name": "fixer", "tenant": world.reseller_a.pk, "scopes": ["ingest", "correct"]},
    )
    assert response.status_code in (200, 403)  # the form again, with the error, or refused
    assert not ApiKey.objects.filter(name="fixer").exists()


# 4. One manager's prices stalling billing for everyone ---------------------------------


@pytest.mark.parametrize(
    "item, field",
    [
        ({"unit_price": "1000000.01"}, "items[0].unit_price"),
        ({"unit_price": "0.000000001"}, "items[0].unit_price"),
        ({"tiers": [{"up_to": None, "unit_price": "1e30"}]}, "items[0].tiers"),
        ({"tiers": [{"up_to": "1e30", "unit_price": "1"}, {"up_to": None, "unit_price": "1"}]},
         "items[0].tiers"),
        ({"tiers": [{"up_to": None, "unit_price": "0.123456789"}]}, "items[0].tiers"),
    ],
)  # fmt: skip
def test_prices_out_of_bounds_are_a_400_naming_the_field(world, users, api, item, field):
    body = {
        "code": "steep",
        "name": "Steep",
        "owner": "reseller-a",
        "items": [{"meter": "call_minutes", **item}],
    }
    response = api(users["manager_a"]).post("/api/v1/plans/", body, format="json")
    assert response.status_code == 400, response.content
    assert {e.get("field") for e in response.json()["errors"]} == {field}
    assert not Plan.objects.filter(code="steep").exists()


def test_a_base_fee_above_the_bound_is_a_400(world, users, api):
    body = {"code": "steep", "name": "Steep", "owner": "reseller-a", "base_fee": "100000000.01"}
    response = api(users["manager_a"]).post("/api/v1/plans/", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "base_fee"


@pytest.fixture
def two_customers(world):
    """Org A and Org B each on a plan of their reseller, with usage this month."""
    period = month_of(timezone.now().date())
    plans = []
    for reseller, org, code in (
        (world.reseller_a, world.org_a, "a-plan"),
        (world.reseller_b, world.org_b, "b-plan"),
    ):
        plan = Plan.objects.create(code=code, name=code, owner=reseller, base_fee=D("10"))
        PlanItem.objects.create(
            plan=plan, meter_id=meter_pk("call_minutes"), included_quantity=D("4"),
            unit_price=D("0.5"), thresholds=[50],
        )  # fmt: skip
        subscribe(tenant=org, plan=plan, starts_on=period)
        plans.append(plan)
    ingest_events(
        [call("u1", "agent-a", "8"), call("u2", "agent-b", "8")], principal=PlatformPrincipal()
    )
    return period, plans


def break_plan(plan):
    """A price stored before the bounds existed (or written around them)."""
    PlanItem.objects.filter(plan=plan).update(
        tiers=[{"up_to": None, "unit_price": "1e30"}], unit_price=D("0")
    )


def test_a_broken_plan_stalls_only_its_own_tenant(world, two_customers):
    period, (plan_a, plan_b) = two_customers
    # The organization with the broken plan is refreshed first (lower id).
    assert world.org_a.pk < world.org_b.pk
    break_plan(plan_a)
    PlanItem.objects.filter(plan=plan_b).update(unit_price=D("1"))
    refresh_drafts()
    statement_b = Statement.objects.get(tenant=world.org_b, period=period)
    assert statement_b.total == D("14.00")  # 10 base + (8 - 4) × 1: refreshed despite A
    failure = TenantFailure.objects.get()
    assert (failure.tenant, failure.job) == (world.org_a, TenantFailure.Job.STATEMENT)
    assert "InvalidOperation" in failure.error or "Overflow" in failure.error
    # Once the price is fixed, the next run refreshes A and clears its record.
    PlanItem.objects.filter(plan=plan_a).update(tiers=[], unit_price=D("2"))
    refresh_drafts()
    assert Statement.objects.get(tenant=world.org_a, period=period).total == D("18.00")
    assert not TenantFailure.objects.exists()


def test_failures_show_to_superusers_only(world, two_customers, users, client, admin_user):
    break_plan(two_customers[1][0])
    refresh_drafts()
    failure = TenantFailure.objects.get()
    changelist = "/admin/billing/tenantfailure/"
    change = f"{changelist}{failure.pk}/change/"
    client.force_login(users["manager_a"])
    assert client.get(changelist).status_code == 403
    assert client.get(change).status_code == 403  # its own tenant's, but a traceback
    client.force_login(admin_user)
    page = client.get(changelist)
    assert page.status_code == 200 and world.org_a.name in page.content.decode()
    assert client.get(change).status_code == 200


def test_finalization_goes_on_past_a_broken_tenant(world, two_customers):
    period, (plan_a, _) = two_customers
    break_plan(plan_a)
    next_month = (period + timedelta(days=32)).replace(day=1)
    finalize_closed_periods(today=next_month)
    assert Statement.objects.get(tenant=world.org_b, period=period).status == "final"
    assert TenantFailure.objects.get().job == TenantFailure.Job.FINALIZE
    # Retried on the next run, and final once it can be rated.
    PlanItem.objects.filter(plan=plan_a).update(tiers=[])
    finalize_closed_periods(today=next_month)
    assert Statement.objects.get(tenant=world.org_a, period=period).status == "final"
    assert not TenantFailure.objects.exists()


def test_subscribing_to_a_broken_plan_answers_201_and_records_the_failure(
    world, users, api, two_customers, django_capture_on_commit_callbacks
):
    period, (plan_a, _) = two_customers
    break_plan(plan_a)
    org = make_tenant("organization", world.reseller_a, slug="org-new")
    ingest_events([call("n1", "org-new", "9")], principal=PlatformPrincipal())
    with django_capture_on_commit_callbacks(execute=True):
        response = api(users["manager_a"]).post(
            "/api/v1/subscriptions/",
            {"tenant": "org-new", "plan": "a-plan", "starts_on": period.isoformat()},
            format="json",
        )
    assert response.status_code == 201
    assert TenantFailure.objects.get().tenant == org


# 5. A newline in a name breaking alerts for everyone -----------------------------------


def test_control_characters_in_names_are_refused(world, users, api):
    response = api(users["manager_a"]).patch(
        "/api/v1/tenants/org-a/", {"name": "Acme\nBcc: victim@example.com"}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"


def test_stored_line_breaks_never_reach_a_mail_header(
    world, two_customers, django_capture_on_commit_callbacks
):
    Tenant.objects.filter(pk=world.org_a.pk).update(name="Acme\r\nBcc: victim@example.com")
    make_user("ann", world.org_a, "manager", email="ann@example.com")
    make_user("ben", world.org_b, "manager", email="ben@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        alerts = check_alerts()
    assert len(alerts) == 2
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects[0].startswith("[Usage Portal] Acme Bcc: victim@example.com: Call minutes")
    assert all("\n" not in s and "\r" not in s for s in subjects)
    assert not TenantFailure.objects.exists()


def test_a_mail_that_cannot_be_sent_stops_no_other_tenant(
    world, two_customers, django_capture_on_commit_callbacks
):
    bad = make_user("ann", world.org_a, "manager", email="ann@example.com")
    type(bad).objects.filter(pk=bad.pk).update(email="ann@example.com\nBcc: x@example.com")
    make_user("ben", world.org_b, "manager", email="ben@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        alerts = check_alerts()
    assert len(alerts) == 2  # both raised and recorded
    assert [m.to for m in mail.outbox] == [["ben@example.com"]]
    failure = TenantFailure.objects.get()
    assert (failure.tenant, failure.job) == (world.org_a, TenantFailure.Job.MAIL)
    assert UsageAlert.objects.get(tenant=world.org_b).notified_to == "ben@example.com"


def test_ingestion_past_a_block_limit_with_a_broken_mail_answers_201(
    world, users, api, django_capture_on_commit_callbacks
):
    plan = Plan.objects.create(code="capped", name="Capped", owner=world.reseller_a)
    PlanItem.objects.create(
        plan=plan, meter_id=meter_pk("emails"), limit=D("1"), overage_policy="block",
        thresholds=[100],
    )  # fmt: skip
    subscribe(tenant=world.org_a, plan=plan, starts_on=month_of(timezone.now().date()))
    bad = make_user("ann", world.org_a, "manager", email="ann@example.com")
    type(bad).objects.filter(pk=bad.pk).update(email="ann@example.com\r\nX: y")
    body = {"event_id": "m1", "tenant": "agent-a", "meter": "emails", "quantity": 2}
    with django_capture_on_commit_callbacks(execute=True):
        response = api(users["manager_a"]).post(EVENTS, body, format="json")
    assert response.status_code == 201
    assert UsageAlert.objects.filter(tenant=world.org_a, percent=100).exists()
    assert TenantFailure.objects.get().job == TenantFailure.Job.MAIL


# 7. Read-only viewers writing usage --------------------------------------------------


@pytest.mark.parametrize("who", ["viewer_a", "org_a"])
def test_viewers_cannot_send_usage(world, users, api, who):
    response = api(users[who]).post(EVENTS, call("v1", "agent-a", "5000"), format="json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "tenant"
    assert not stored_events()


def test_managers_and_ingest_keys_still_send_usage(world, users, api, key_client):
    assert api(users["manager_a"]).post(EVENTS, call("m1", "agent-a"), format="json").status_code
    _, key = ApiKey.objects.create_key(name="k", tenant=world.org_a, scopes=["ingest"])
    assert key_client(key).post(EVENTS, call("k1", "agent-a"), format="json").status_code == 201
    assert len(stored_events()) == 2


# 12. Existence oracle -------------------------------------------------------------


def test_uniqueness_errors_do_not_confirm_foreign_values(world, users, api):
    Plan.objects.create(code="b-secret", name="B's plan", owner=world.reseller_b)
    manager_a = api(users["manager_a"])
    plan = manager_a.post(
        "/api/v1/plans/", {"code": "b-secret", "name": "Mine", "owner": "reseller-a"}, format="json"
    )
    assert plan.status_code == 400
    assert plan.json()["errors"][0]["message"] == "This code is not available; choose another."
    Tenant.objects.filter(pk=world.org_b.pk).update(external_id="B-SECRET-EXT")
    tenant = manager_a.patch(
        "/api/v1/tenants/org-a/", {"external_id": "B-SECRET-EXT"}, format="json"
    )
    assert tenant.status_code == 400
    message = tenant.json()["errors"][0]["message"]
    assert message == "This external id is not available; choose another."
    assert "exists" not in message


# Text hygiene at ingestion (the command reads files, not requests) ----------------------


@pytest.mark.parametrize(
    "event, field",
    [
        (call("a\ud800", "agent-a"), "event_id"),
        (call("a\x00b", "agent-a"), "event_id"),
        (call("a\nb", "agent-a"), "event_id"),
        (call("ok", "agent-a\x1b"), "tenant"),
        (call("ok", "agent-a", attributes={"direction": "in\ud800"}), "attributes.direction"),
        (call("ok", "agent-a", attributes={"dir\x00": "in"}), "attributes"),
    ],
)
def test_bad_text_in_events_is_refused_with_its_field(world, event, field):
    from metering.ingestion import BatchRejected

    with pytest.raises(BatchRejected) as rejected:
        ingest_events([event], principal=PlatformPrincipal())
    assert [e.field for e in rejected.value.errors] == [field]
    assert not stored_events()


# Beyond the list: a customer breaking its seller's integration ----------------------


def test_a_tenants_own_managers_cannot_change_what_the_seller_integrates_by(world, users, api):
    org_manager = api(make_user("omar", world.org_a, "manager"))
    for change in ({"external_id": "NEW-KEY"}, {"is_active": False}):
        response = org_manager.patch("/api/v1/tenants/org-a/", change, format="json")
        assert response.status_code == 400, change
        assert response.json()["errors"][0]["field"] == next(iter(change))
    renamed = org_manager.patch("/api/v1/tenants/org-a/", {"name": "Acme"}, format="json")
    assert renamed.status_code == 200
    # The seller above may.
    seller = api(users["manager_a"])
    changed = seller.patch("/api/v1/tenants/org-a/", {"external_id": "NEW-KEY"}, format="json")
    assert changed.status_code == 200
    world.org_a.refresh_from_db()
    assert (world.org_a.external_id, world.org_a.name) == ("NEW-KEY", "Acme")
