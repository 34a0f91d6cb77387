"""White label in a real Chromium: each organization's staff see their reseller's
name and colour; the sign-in page at a reseller's domain shows its brand."""

from urllib.parse import urlsplit

import pytest

from accounts.models import Brand
from tests.factories import PASSWORD, make_user
from usage_portal.hosts import AllowedHosts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def brands(world, settings):
    # The live server appends its host to a plain copy of ALLOWED_HOSTS.
    settings.ALLOWED_HOSTS = AllowedHosts(list(settings.ALLOWED_HOSTS))
    Brand.objects.create(tenant=world.reseller_a, name="Acme Telecom", primary_color="#0f766e",
                         domain="acme.localhost")  # fmt: skip
    Brand.objects.create(tenant=world.reseller_b, name="Bravo Cloud", primary_color="#f5b301")


def sign_in(page, url, username):
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/reports/t/**")


def topbar(page) -> dict:
    return page.evaluate(
        """() => {
            const bar = getComputedStyle(document.querySelector('.topbar'));
            const name = document.querySelector('.topbar .brand-name');
            return {background: bar.backgroundColor, ink: getComputedStyle(name).color,
                    name: name.innerText, title: document.title};
        }"""
    )


def test_each_organizations_staff_see_only_their_resellers_brand(
    browser, live_server, world, users, brands
):
    make_user("oscar", world.org_b, "viewer")
    seen = {}
    for username in ("olga", "oscar"):
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, live_server.url, username)
        seen[username] = topbar(page)
        text = page.content()
        seen[username]["others"] = [n for n in ("Usage Portal", "Acme Telecom", "Bravo Cloud")
                                    if n in text and n != seen[username]["name"]]  # fmt: skip
        context.close()
    assert seen["olga"] == {"background": "rgb(15, 118, 110)", "ink": "rgb(255, 255, 255)",
                            "name": "Acme Telecom", "title": "Org A · Acme Telecom",
                            "others": []}  # fmt: skip
    assert seen["oscar"] == {"background": "rgb(245, 179, 1)", "ink": "rgb(0, 0, 0)",
                             "name": "Bravo Cloud", "title": "Org B · Bravo Cloud",
                             "others": []}  # fmt: skip


def test_the_sign_in_page_at_a_resellers_domain_shows_its_brand(
    page, live_server, world, users, brands
):
    port = urlsplit(live_server.url).port
    page.goto(f"http://acme.localhost:{port}/accounts/login/")
    assert topbar(page)["name"] == "Acme Telecom"
    assert "Usage Portal" not in page.content()
    page.goto(f"{live_server.url}/accounts/login/")
    assert topbar(page)["name"] == "Usage Portal"
