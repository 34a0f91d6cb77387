import pytest

from accounts.models import Membership, Tenant

CHANGELIST = "/admin/accounts/tenant/"


def change_url(tenant):
    return f"/admin/accounts/tenant/{tenant.pk}/change/"


def test_reseller_staff_changelist_shows_only_their_subtree(world, users, login):
    response = login(users["manager_a"]).get(CHANGELIST)
    assert response.status_code == 200
    shown = {t.slug for t in response.context["cl"].result_list}
    assert shown == {"reseller-a", "org-a", "agent-a"}
    assert "reseller-b" not in response.content.decode()


@pytest.mark.parametrize("name", ["reseller_b", "org_b", "agent_b", "partner"])
def test_other_resellers_objects_answer_404_in_admin(world, users, login, name):
    client = login(users["manager_a"])
    tenant = getattr(world, name)
    assert client.get(change_url(tenant)).status_code == 404
    assert client.post(change_url(tenant), {"name": "Hacked"}).status_code == 404
    assert client.get(f"/admin/accounts/tenant/{tenant.pk}/history/").status_code == 404
    tenant.refresh_from_db()
    assert tenant.name != "Hacked"


def test_membership_admin_is_scoped(world, users, login):
    theirs = Membership.objects.get(user=users["manager_b"])
    client = login(users["manager_a"])
    listed = client.get("/admin/accounts/membership/").context["cl"].result_list
    assert {m.tenant.slug for m in listed} <= {"reseller-a", "org-a", "agent-a"}
    assert client.get(f"/admin/accounts/membership/{theirs.pk}/change/").status_code == 404


def test_parent_choices_are_limited_to_managed_tenants(world, users, login):
    response = login(users["manager_a"]).get(change_url(world.agent_a))
    choices = {str(t.slug) for t in response.context["adminform"].form.fields["parent"].queryset}
    assert choices == {"reseller-a", "org-a", "agent-a"}


def form_data(tenant, **changes):
    data = {
        "name": tenant.name,
        "slug": tenant.slug,
        "kind": tenant.kind,
        "parent": tenant.parent_id or "",
        "external_id": tenant.external_id or "",
        "timezone": tenant.timezone,
        "currency": tenant.currency,
        "is_active": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def test_admin_form_reports_bad_parent_as_field_error(world, users, login):
    client = login(users["manager_a"])
    response = client.post(
        change_url(world.agent_a), form_data(world.agent_a, parent=world.reseller_a.pk)
    )
    assert response.status_code == 200
    assert "parent" in response.context["adminform"].form.errors
    world.agent_a.refresh_from_db()
    assert world.agent_a.parent == world.org_a


def test_admin_form_refuses_moving_outside_the_subtree(world, users, login):
    client = login(users["manager_a"])
    response = client.post(
        change_url(world.org_a), form_data(world.org_a, parent=world.reseller_b.pk)
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    world.org_a.refresh_from_db()
    assert world.org_a.parent == world.reseller_a


def test_admin_form_saves_a_valid_edit(world, users, login):
    client = login(users["manager_a"])
    response = client.post(change_url(world.org_a), form_data(world.org_a, name="Org A Renamed"))
    assert response.status_code == 302
    world.org_a.refresh_from_db()
    assert world.org_a.name == "Org A Renamed"


def drag(client, cut, pasted_on, position="last-child"):
    return client.post(
        CHANGELIST,
        {"cmd": "move_node", "cut_item": cut.pk, "pasted_on": pasted_on.pk, "position": position},
    )


def test_drag_inside_subtree_moves(world, users, login):
    org_a2 = Tenant.objects.create(
        name="Org A2", slug="org-a2", kind="organization", parent=world.reseller_a
    )
    response = drag(login(users["manager_a"]), world.agent_a, org_a2)
    assert response.content.startswith(b"OK")
    world.agent_a.refresh_from_db()
    assert world.agent_a.parent == org_a2


def test_drag_beside_own_root_is_refused(world, users, login):
    # Dropping the org "right of" the reseller would make it a top-level sibling.
    response = drag(login(users["manager_a"]), world.org_a, world.reseller_a, position="right")
    assert response.content.startswith(b"FAIL")
    world.org_a.refresh_from_db()
    assert world.org_a.parent == world.reseller_a


def test_drag_breaking_kind_rules_is_refused(world, users, login):
    response = drag(login(users["superuser"]), world.agent_a, world.reseller_a)
    assert response.content.startswith(b"FAIL")
    world.agent_a.refresh_from_db()
    assert world.agent_a.parent == world.org_a


def test_drag_onto_another_resellers_tenant_is_refused(world, users, login):
    response = drag(login(users["manager_a"]), world.agent_a, world.org_b)
    assert response.content.startswith(b"FAIL")
    world.agent_a.refresh_from_db()
    assert world.agent_a.parent == world.org_a


def test_viewer_cannot_reach_admin(world, users, login):
    response = login(users["org_a"]).get(CHANGELIST)
    assert response.status_code == 302  # not staff: sent to the admin login


def test_superuser_sees_whole_tree(world, users, login):
    response = login(users["superuser"]).get(CHANGELIST)
    assert len(response.context["cl"].result_list) == Tenant.objects.count()


def test_api_key_created_in_admin_is_shown_once_and_works(world, users, login, client):
    staff = login(users["manager_a"])
    response = staff.post(
        "/admin/accounts/apikey/add/",
        {"name": "crm", "tenant": world.org_a.pk, "scopes": ["read"]},
        follow=True,
    )
    shown = [str(m) for m in response.context["messages"]]
    key = shown[0].split("is: ")[1].split(" ")[0]
    from accounts.models import ApiKey

    stored = ApiKey.objects.get(name="crm")
    assert stored.tenant == world.org_a and stored.scopes == ["read"]
    assert key not in staff.get(f"/admin/accounts/apikey/{stored.pk}/change/").content.decode()
    api_client = type(client)()
    api_client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
    assert api_client.get("/api/v1/tenants/").status_code == 200


def test_api_keys_of_another_reseller_are_hidden(world, users, login):
    from accounts.models import ApiKey

    theirs, _ = ApiKey.objects.create_key(name="b", tenant=world.reseller_b, scopes=["read"])
    client = login(users["manager_a"])
    assert "b" not in {
        k.name for k in client.get("/admin/accounts/apikey/").context["cl"].result_list
    }
    assert client.get(f"/admin/accounts/apikey/{theirs.pk}/change/").status_code == 404
    response = client.post(
        "/admin/accounts/apikey/add/", {"name": "x", "tenant": world.org_b.pk, "scopes": ["read"]}
    )
    assert response.status_code == 200 and not ApiKey.objects.filter(name="x").exists()
