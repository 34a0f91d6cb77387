"""The portal as a person uses it: a real Chromium against the live test server."""

import pytest

from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page, live_server, username):
    page.goto(f"{live_server.url}/reports/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_reseller_signs_in_and_drills_down(page, live_server, world, users):
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    assert page.locator("h1").inner_text().startswith("Reseller A")
    assert "Partner P" not in page.locator(".breadcrumb").inner_text()
    page.click("text=Org A")
    page.wait_for_url(f"{live_server.url}/reports/t/org-a/")
    assert page.locator(".breadcrumb li").all_inner_texts() == ["Reseller A", "Org A"]
    page.click("text=Agent A")
    page.wait_for_url(f"{live_server.url}/reports/t/agent-a/")
    # The stylesheet is served (the page works without a CDN).
    color = page.evaluate("getComputedStyle(document.querySelector('.topbar')).backgroundColor")
    assert color == "rgb(20, 32, 46)"


def test_other_resellers_page_is_not_found_in_the_browser(page, live_server, world, users):
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    response = page.goto(f"{live_server.url}/reports/t/org-b/")
    assert response.status == 404
    assert "Org B" not in page.content()


def test_sign_out(page, live_server, world, users):
    sign_in(page, live_server, "alice")
    page.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    page.click("text=Log out")
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    page.goto(f"{live_server.url}/reports/")
    assert "/accounts/login/" in page.url
