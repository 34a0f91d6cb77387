from django.contrib.auth.models import AnonymousUser

from accounts.models import Membership, Tenant


def slugs(qs):
    return set(qs.values_list("slug", flat=True))


def test_member_sees_own_subtree_only(world, users):
    assert slugs(Tenant.objects.visible_to(users["manager_a"])) == {
        "reseller-a",
        "org-a",
        "agent-a",
    }
    assert slugs(Tenant.objects.visible_to(users["org_a"])) == {"org-a", "agent-a"}


def test_partner_sees_resellers_below_it(world, users):
    assert slugs(Tenant.objects.visible_to(users["partner"])) == {
        "partner-p",
        "reseller-a",
        "org-a",
        "agent-a",
    }


def test_several_memberships_union_their_subtrees(world, users):
    user = users["org_a"]
    Membership.objects.create(user=user, tenant=world.org_b, role="viewer")
    assert slugs(Tenant.objects.visible_to(user)) == {"org-a", "agent-a", "org-b", "agent-b"}


def test_superuser_sees_all_and_strangers_see_none(world, users):
    assert Tenant.objects.visible_to(users["superuser"]).count() == Tenant.objects.count()
    assert not Tenant.objects.visible_to(users["nobody"]).exists()
    assert not Tenant.objects.visible_to(AnonymousUser()).exists()
    assert not Tenant.objects.visible_to(None).exists()


def test_managed_by_needs_manager_role(world, users):
    assert slugs(Tenant.objects.managed_by(users["manager_a"])) == {
        "reseller-a",
        "org-a",
        "agent-a",
    }
    assert not Tenant.objects.managed_by(users["viewer_a"]).exists()
