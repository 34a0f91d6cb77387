from collections import Counter

from django.contrib.auth import authenticate
from django.core.management import call_command

from accounts.demo import demo_tree, demo_users
from accounts.models import Membership, Tenant


def tree_snapshot():
    return sorted(
        Tenant.objects.values_list("slug", "name", "kind", "parent__slug", "external_id", "level")
    )


def test_seed_demo_builds_the_tree_and_is_idempotent(db, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--no-progress", "--no-usage")
    first = tree_snapshot()
    kinds = Counter(Tenant.objects.values_list("kind", flat=True))
    assert kinds == {"partner": 2, "reseller": 6, "organization": 60, "agent": 600}
    top_resellers = Tenant.objects.filter(kind="reseller", parent__isnull=True)
    assert top_resellers.count() == 1
    siblings = Counter((parent, name) for _, name, _, parent, *_ in first)
    assert max(siblings.values()) == 1  # no two children of one parent share a name

    call_command("seed_demo", "--no-progress", "--no-usage")
    assert tree_snapshot() == first
    assert Membership.objects.count() == 4


def test_demo_is_the_same_on_every_build():
    assert demo_tree() == demo_tree()


def test_printed_logins_work_and_are_scoped(db, settings, capsys):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--no-progress", "--no-usage")
    printed = capsys.readouterr().out
    for spec in demo_users(demo_tree()):
        assert spec.username in printed and spec.password in printed
        user = authenticate(username=spec.username, password=spec.password)
        assert user is not None
    reseller = authenticate(username="reseller", password="reseller-demo-2026")
    visible = Tenant.objects.visible_to(reseller)
    assert visible.filter(kind="reseller").count() == 1
    assert visible.count() == 1 + 10 + 100


def test_if_empty_leaves_existing_data_alone(db, capsys):
    Tenant.objects.create(name="Existing", slug="existing", kind="partner")
    call_command("seed_demo", "--if-empty", "--no-progress", "--no-usage")
    assert Tenant.objects.count() == 1
    out = capsys.readouterr().out
    assert "reseller-demo-2026" in out
    assert "Demo logins (http://127.0.0.1:8000/):" in out


def test_logins_name_the_address_the_portal_is_served_at(db, capsys):
    Tenant.objects.create(name="Existing", slug="existing", kind="partner")
    call_command("seed_demo", "--if-empty", "--no-progress", "--url", "http://0.0.0.0:9000/")
    assert "Demo logins (http://0.0.0.0:9000/):" in capsys.readouterr().out


def test_demo_billing_plans_and_subscriptions(db, settings):
    from billing.models import Plan, Statement, Subscription

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--no-progress", "--no-usage")
    resellers = Tenant.objects.filter(kind="reseller")
    for reseller in resellers:
        wholesale = Plan.objects.get(customer=reseller)
        assert wholesale.owner == reseller.parent  # its partner, or the platform
        assert Plan.objects.filter(owner=reseller, customer__isnull=True).count() == 3
        assert Subscription.objects.get(tenant=reseller).plan == wholesale
    orgs = Tenant.objects.filter(kind="organization")
    assert Subscription.objects.filter(tenant__in=orgs).count() == orgs.count() == 60
    # One organization per reseller is on a tight custom plan with a blocking email cap.
    custom = Plan.objects.filter(customer__kind="organization")
    assert custom.count() == resellers.count()
    assert all(p.items.get(meter__code="emails").overage_policy == "block" for p in custom)
    assert Statement.objects.filter(status="draft").count() == 66
    # Every charge model shows: per-dimension items, volume, package, flat fees, a minimum.
    from billing.models import PlanItem

    items = PlanItem.objects.filter(plan__owner__kind="reseller", plan__customer__isnull=True)
    assert set(items.filter(meter__code="storage_units").values_list("dimension", flat=True)) == {
        "hot",
        "cool",
        None,
    }
    assert items.filter(meter__code="processing_units", dimension="ocr", charge_model="volume")
    assert items.filter(meter__code="chat_sessions", charge_model="package", package_size=100)
    assert Plan.objects.filter(code__endswith="-enterprise", minimum_commitment__gt=0).exists()
    wholesale_calls = PlanItem.objects.filter(
        plan__customer__kind="reseller", meter__code="call_minutes"
    )
    assert {item.charge_model for item in wholesale_calls} == {"volume"}
    snapshot = sorted(Subscription.objects.values_list("tenant__slug", "plan__code", "starts_on"))
    call_command("seed_demo", "--no-progress", "--no-usage")
    assert (
        sorted(Subscription.objects.values_list("tenant__slug", "plan__code", "starts_on"))
        == snapshot
    )
