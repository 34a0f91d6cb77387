"""The portal on a phone (390 × 844): wide tables scroll inside their card, the page
itself never scrolls sideways, and the top bar keeps every control on screen."""

import pytest

from tests.browser.test_portal_browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}
PAGES = [
    "/reports/t/reseller-a/",
    "/reports/t/reseller-a/records/",
    "/reports/t/reseller-a/statements/",
]


def page_overflow(page) -> dict:
    return page.evaluate(
        """() => ({scrollWidth: document.documentElement.scrollWidth,
                   innerWidth: window.innerWidth})"""
    )


def assert_on_screen(page, selector: str):
    control = page.locator(selector)
    assert control.is_visible(), f"{selector} is hidden"
    box = control.bounding_box()
    width = page.evaluate("window.innerWidth")
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{selector} is off screen: {box}"
    assert box["y"] >= 0


@pytest.fixture
def phone(browser):
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.set_default_timeout(15000)
    yield page
    context.close()


def test_pages_fit_a_phone_and_tables_scroll_in_their_card(
    phone, live_server, report_usage, billed, users
):
    sign_in(phone, live_server, "alice")
    phone.wait_for_url(f"{live_server.url}/reports/t/reseller-a/")
    for path in PAGES:
        phone.goto(f"{live_server.url}{path}")
        sizes = page_overflow(phone)
        assert sizes["scrollWidth"] <= sizes["innerWidth"], f"{path} scrolls sideways: {sizes}"
        for control in [
            "form.logout button",
            ".topbar .tenants a",
            ".mainnav a[href='/api/v1/']",
            ".mainnav a[href='/admin/']",
        ]:
            assert_on_screen(phone, control)
        # The widest table of the page is wider than the phone and scrolls inside its card.
        widest = phone.evaluate(
            """() => Math.max(...[...document.querySelectorAll('.table-container')].map(
                     (c) => c.scrollWidth - c.clientWidth))"""
        )
        assert widest > 0, f"{path}: no table wider than the phone; the test proves nothing"


def test_tenant_switcher_fits_a_phone(phone, live_server, report_usage, users, world):
    users["org_a"].memberships.create(tenant=world.org_b, role="viewer")
    sign_in(phone, live_server, "olga")
    phone.wait_for_url(f"{live_server.url}/reports/")
    phone.goto(f"{live_server.url}/reports/t/org-a/records/")
    assert_on_screen(phone, ".switcher summary")
    assert_on_screen(phone, "form.logout button")
    phone.click(".switcher summary")
    assert_on_screen(phone, ".switcher ul")
    sizes = page_overflow(phone)
    assert sizes["scrollWidth"] <= sizes["innerWidth"], sizes
    phone.click(".switcher >> text=Org B")
    phone.wait_for_url(f"{live_server.url}/reports/t/org-b/")
