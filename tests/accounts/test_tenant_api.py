import pytest
from rest_framework.test import APIClient

from accounts.models import Tenant
from tests.factories import PASSWORD

TENANTS = "/api/v1/tenants/"


def fields_in(response):
    return {e.get("field") for e in response.json()["errors"]}


def test_list_shows_exactly_the_callers_subtree(world, users, api):
    response = api(users["manager_a"]).get(TENANTS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert {t["slug"] for t in body["results"]} == {"reseller-a", "org-a", "agent-a"}
    org = next(t for t in body["results"] if t["slug"] == "org-a")
    assert org == {
        "slug": "org-a",
        "name": "Org A",
        "kind": "organization",
        "parent": "reseller-a",
        "external_id": "EXT-ORG-A",
        "timezone": "UTC",
        "currency": "USD",
        "is_active": True,
        "branding": None,
    }


def test_managers_set_time_zone_and_currency_checked_against_iana_and_iso_4217(world, users, api):
    client = api(users["manager_a"])
    changed = client.patch(
        f"{TENANTS}org-a/", {"timezone": "Asia/Tokyo", "currency": "JPY"}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["timezone"], changed.json()["currency"]) == ("Asia/Tokyo", "JPY")
    world.org_a.refresh_from_db()
    assert (world.org_a.timezone, world.org_a.currency) == ("Asia/Tokyo", "JPY")
    created = client.post(
        TENANTS,
        {"name": "Kuwait Org", "slug": "kw-org", "kind": "organization", "parent": "reseller-a",
         "timezone": "Asia/Kuwait", "currency": "KWD"},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201, created.content
    assert (created.json()["timezone"], created.json()["currency"]) == ("Asia/Kuwait", "KWD")
    for bad in ({"timezone": "Mars/Olympus"}, {"timezone": "CET+1"}, {"currency": "XYZ"},
                {"currency": "usd"}, {"currency": "DOLLAR"}):  # fmt: skip
        response = client.patch(f"{TENANTS}org-a/", bad, format="json")
        assert response.status_code == 400, bad
        assert fields_in(response) == set(bad), response.content
    world.org_a.refresh_from_db()
    assert (world.org_a.timezone, world.org_a.currency) == ("Asia/Tokyo", "JPY")
    # A viewer reads them but does not change them.
    viewer = api(users["viewer_a"])
    assert viewer.get(f"{TENANTS}org-a/").json()["timezone"] == "Asia/Tokyo"
    refused = viewer.patch(f"{TENANTS}org-a/", {"timezone": "UTC"}, format="json")
    assert refused.status_code in (403, 404)
    world.org_a.refresh_from_db()
    assert world.org_a.timezone == "Asia/Tokyo"


@pytest.mark.parametrize("slug", ["reseller-b", "org-b", "agent-b", "partner-p"])
def test_other_resellers_tenant_answers_404(world, users, api, slug):
    client = api(users["manager_a"])
    assert client.get(f"{TENANTS}{slug}/").status_code == 404
    response = client.patch(f"{TENANTS}{slug}/", {"name": "Hacked"}, format="json")
    assert response.status_code == 404
    assert "Hacked" not in response.content.decode()
    assert not Tenant.objects.filter(name="Hacked").exists()


def test_filters_kind_parent_search_and_page_size(world, users, api):
    client = api(users["superuser"])
    kinds = {t["kind"] for t in client.get(TENANTS, {"kind": "agent"}).json()["results"]}
    assert kinds == {"agent"}
    children = client.get(TENANTS, {"parent": "reseller-b"}).json()["results"]
    assert [t["slug"] for t in children] == ["org-b"]
    found = client.get(TENANTS, {"search": "ext-org"}).json()["results"]
    assert [t["slug"] for t in found] == ["org-a"]
    page = client.get(TENANTS, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"] and page["previous"] is None


def test_manager_creates_child_inside_subtree(world, users, api):
    response = api(users["manager_a"]).post(
        TENANTS,
        {"name": "New Org", "slug": "new-org", "kind": "organization", "parent": "reseller-a"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["parent"] == "reseller-a"
    created = Tenant.objects.get(slug="new-org")
    assert created.parent == world.reseller_a
    world.reseller_a.refresh_from_db()
    assert created in world.reseller_a.get_descendants()


def test_viewer_cannot_create_or_edit(world, users, api):
    client = api(users["viewer_a"])
    response = client.post(
        TENANTS,
        {"name": "X", "slug": "x-org", "kind": "organization", "parent": "reseller-a"},
        format="json",
    )
    assert response.status_code == 400
    assert fields_in(response) == {"parent"}
    assert client.patch(f"{TENANTS}org-a/", {"name": "Renamed"}, format="json").status_code == 403
    assert not Tenant.objects.filter(slug="x-org").exists()


def test_create_under_another_resellers_tenant_is_a_field_error(world, users, api):
    response = api(users["manager_a"]).post(
        TENANTS,
        {"name": "Sneaky", "slug": "sneaky", "kind": "organization", "parent": "reseller-b"},
        format="json",
    )
    assert response.status_code == 400
    assert fields_in(response) == {"parent"}
    assert not Tenant.objects.filter(slug="sneaky").exists()


def test_only_superuser_creates_top_level(world, users, api):
    body = {"name": "Top", "slug": "top", "kind": "partner", "parent": None}
    assert api(users["manager_a"]).post(TENANTS, body, format="json").status_code == 400
    assert api(users["superuser"]).post(TENANTS, body, format="json").status_code == 201


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "A", "slug": "a1", "kind": "agent", "parent": "reseller-a"}, "parent"),
        ({"name": "A", "slug": "a1", "kind": "galaxy", "parent": "reseller-a"}, "kind"),
        ({"name": "A", "slug": "org-a", "kind": "organization", "parent": "reseller-a"}, "slug"),
        ({"name": "A", "slug": "Bad Slug", "kind": "organization", "parent": "reseller-a"}, "slug"),
        ({"name": "", "slug": "a1", "kind": "organization", "parent": "reseller-a"}, "name"),
        ({"name": "A", "slug": "a1", "kind": "organization", "parent": "nope"}, "parent"),
        (
            {
                "name": "A",
                "slug": "a1",
                "kind": "organization",
                "parent": "reseller-a",
                "external_id": "EXT-ORG-A",
            },
            "external_id",
        ),
        ({"slug": "a1", "kind": "organization", "parent": "reseller-a"}, "name"),
    ],
)
def test_bad_input_is_a_400_with_the_field(world, users, api, body, field):
    response = api(users["manager_a"]).post(TENANTS, body, format="json")
    assert response.status_code == 400, response.content
    assert field in fields_in(response)
    assert all(e["message"] for e in response.json()["errors"])
    assert not Tenant.objects.filter(slug="a1").exists()


def test_malformed_bodies_answer_json_400(world, users, api):
    client = api(users["manager_a"])
    for raw in ["{not json", "[1, 2, 3]", '"just a string"']:
        response = client.post(TENANTS, raw, content_type="application/json")
        assert response.status_code == 400
        assert response["Content-Type"].startswith("application/json")


def test_patch_renames_and_moves_within_subtree(world, users, api):
    client = api(users["partner"])
    response = client.patch(f"{TENANTS}org-a/", {"name": "Renamed Org"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed Org"
    sibling = Tenant.objects.create(name="R2", slug="r2", kind="reseller", parent=world.partner)
    response = client.patch(f"{TENANTS}org-a/", {"parent": "r2"}, format="json")
    assert response.status_code == 200
    world.org_a.refresh_from_db()
    assert world.org_a.parent == sibling
    sibling.refresh_from_db()
    assert world.agent_a in sibling.get_descendants()


def test_patch_cannot_change_slug_or_kind_or_leave_the_subtree(world, users, api):
    client = api(users["manager_a"])
    response = client.patch(
        f"{TENANTS}org-a/", {"slug": "moved", "kind": "reseller"}, format="json"
    )
    assert response.status_code == 400
    assert {(e["field"], e["message"]) for e in response.json()["errors"]} == {
        ("slug", "The slug cannot be changed once the tenant exists."),
        ("kind", "The kind cannot be changed once the tenant exists."),
    }
    response = client.patch(f"{TENANTS}org-a/", {"parent": "reseller-b"}, format="json")
    assert response.status_code == 400
    world.org_a.refresh_from_db()
    assert world.org_a.parent == world.reseller_a


def test_token_auth_round_trip(world, users):
    client = APIClient()
    assert client.get(TENANTS).status_code in (401, 403)
    response = client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    slugs = {t["slug"] for t in client.get(TENANTS).json()["results"]}
    assert slugs == {"reseller-a", "org-a", "agent-a"}


def test_token_with_wrong_password_is_a_400(world, users):
    response = APIClient().post("/api/v1/auth/token/", {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"]


def test_unknown_api_path_is_json_404(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}
