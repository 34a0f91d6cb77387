import re

import pytest
from django.contrib.auth import get_user_model

from tests.factories import PASSWORD


def test_login_page_signs_in_and_lands_on_the_top_tenant(world, users, client):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/reports/t/reseller-a/"
    assert "Reseller A" in response.content.decode()


def test_wrong_password_stays_on_login(world, users, client):
    response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()


def test_logout(world, users, login):
    client = login(users["manager_a"])
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/reports/").status_code == 302


def test_reports_requires_login(client, db):
    response = client.get("/reports/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_several_top_tenants_get_a_chooser(world, users, login):
    response = login(users["superuser"]).get("/reports/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose a tenant" in page
    for name in ["Partner P", "Reseller B"]:
        assert name in page


def test_nested_memberships_count_once(world, users, login):
    user = users["manager_a"]
    user.memberships.create(tenant=world.org_a, role="viewer")
    response = login(user).get("/reports/")
    assert response.status_code == 302 and response["Location"] == "/reports/t/reseller-a/"


def test_user_without_membership_sees_an_explanation(world, users, login):
    response = login(users["nobody"]).get("/reports/")
    assert "not a member of any tenant" in response.content.decode()


def breadcrumb(response) -> str:
    page = response.content.decode()
    start = page.index('class="breadcrumb"')
    return page[start : page.index("</nav>", start)]


def test_breadcrumb_shows_only_visible_ancestors(world, users, login):
    trail = breadcrumb(login(users["manager_a"]).get("/reports/t/agent-a/"))
    assert "Reseller A" in trail and "Org A" in trail and "Agent A" in trail
    assert "Partner P" not in trail
    trail = breadcrumb(login(users["partner"]).get("/reports/t/agent-a/"))
    assert "Partner P" in trail


def test_tenant_page_links_children(world, users, login):
    page = login(users["manager_a"]).get("/reports/t/reseller-a/").content.decode()
    assert 'href="/reports/t/org-a/"' in page


@pytest.mark.parametrize("slug", ["reseller-b", "org-b", "agent-b", "partner-p", "missing"])
def test_other_resellers_pages_answer_404(world, users, login, slug):
    response = login(users["manager_a"]).get(f"/reports/t/{slug}/")
    assert response.status_code == 404
    assert "Reseller B" not in response.content.decode()


def test_switcher_lists_each_membership(world, users, login):
    user = get_user_model().objects.get(username="olga")
    user.memberships.create(tenant=world.org_b, role="viewer")
    page = login(user).get("/reports/").content.decode()
    assert 'class="switcher"' in page
    assert "/reports/t/org-a/" in page and "/reports/t/org-b/" in page


def top_bar_links(page: str) -> list[str]:
    bar = page[page.index('<header class="topbar"') : page.index("</header>")]
    return re.findall(r'href="([^"]+)"', bar)


@pytest.mark.parametrize("user", ["manager_a", "viewer_a"])
@pytest.mark.parametrize(
    "path",
    ["/reports/t/reseller-a/", "/reports/t/org-a/records/", "/reports/t/agent-a/statements/"],
)
def test_every_top_bar_link_answers_for_a_reseller_user(world, users, login, user, path):
    client = login(users[user])
    links = top_bar_links(client.get(path).content.decode())
    assert {"/reports/", "/api/v1/", "/reports/t/reseller-a/"} <= set(links)
    assert ("/admin/" in links) == users[user].is_staff
    for link in links:
        assert client.get(link, follow=True).status_code == 200, link
