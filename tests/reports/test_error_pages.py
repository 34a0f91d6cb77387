"""Error pages in the portal's own look, with a way back; the API keeps answering JSON;
the admin carries the portal's name and icon."""

import re

from django.test import RequestFactory

from usage_portal.views import server_error


def without_csrf_token(html: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)


def test_a_missing_page_is_the_portals_404_with_a_way_back(users, login):
    response = login(users["manager_a"]).get("/reports/t/no-such-tenant/")
    html = response.content.decode()
    assert response.status_code == 404
    assert "Page not found" in html and 'href="/reports/"' in html
    assert 'class="topbar"' in html and "Log out" in html  # the portal's header, signed in


def test_another_resellers_page_looks_the_same_as_a_missing_one(world, users, login):
    client = login(users["manager_a"])
    theirs = client.get("/reports/t/org-b/").content.decode()
    missing = client.get("/reports/t/no-such-tenant/").content.decode()
    assert without_csrf_token(theirs) == without_csrf_token(missing)


def test_the_api_still_answers_json_404(users, api):
    response = api(users["manager_a"]).get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")


def test_the_500_page_is_the_portals_with_a_way_back(db):
    response = server_error(RequestFactory().get("/reports/"))
    html = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong" in html and 'href="/reports/"' in html
    assert 'class="topbar"' in html


def test_admin_pages_carry_the_portals_name_and_icon(users, login):
    client = login(users["manager_a"])
    for url in ("/admin/", "/admin/billing/plan/", "/admin/billing/plan/add/"):
        html = client.get(url).content.decode()
        assert "Usage Portal administration" in html and "favicon.svg" in html, url
        assert "Django administration" not in html, url
    assert 'href="/reports/"' in client.get("/admin/").content.decode()
