"""White label: a brand per partner and reseller, inherited below, shown on every page,
set through the tenants API by the tenant's managers, answered at its own domain."""

import pytest
from django.core import mail
from django.urls import reverse

from accounts.brands import effective_brand, fetch_logo, platform_brand
from accounts.demo import bars_logo
from accounts.mail import managers_by_brand
from accounts.models import Brand
from billing.alerts import check_alerts
from tests.factories import make_user
from usage_portal.hosts import AllowedHosts

TENANT = "/api/v1/tenants/{}/"


@pytest.fixture
def brand_hosts(settings):
    """The test runner copies ALLOWED_HOSTS into a plain list; put the brands back."""
    settings.ALLOWED_HOSTS = AllowedHosts(list(settings.ALLOWED_HOSTS))


@pytest.fixture
def brand_a(world):
    return Brand.objects.create(
        tenant=world.reseller_a,
        name="Acme Telecom",
        primary_color="#0f766e",
        support_email="help@acme.example",
        domain="portal.acme.example",
    )


@pytest.fixture
def brand_b(world):
    return Brand.objects.create(
        tenant=world.reseller_b, name="Bravo Cloud", primary_color="#f5b301"
    )


def patch(api, user, slug, body):
    return api(user).patch(TENANT.format(slug), body, format="json")


def fields_in(response) -> dict[str, str]:
    return {e.get("field"): e["message"] for e in response.json()["errors"]}


# --- the effective brand ------------------------------------------------------------


def test_a_tenant_shows_its_nearest_branded_ancestors_brand(world):
    assert effective_brand(world.org_a) == platform_brand()
    Brand.objects.create(tenant=world.partner, name="Partner Brand", primary_color="#112233")
    assert effective_brand(world.agent_a).name == "Partner Brand"  # the reseller has none
    assert effective_brand(world.reseller_a).name == "Partner Brand"
    Brand.objects.create(tenant=world.reseller_a, primary_color="#445566")
    shown = effective_brand(world.agent_a)
    # No name of its own: the reseller's name, never the platform's or the partner's.
    assert (shown.name, shown.color, shown.tenant_id) == (
        "Reseller A",
        "#445566",
        world.reseller_a.pk,
    )
    assert effective_brand(world.org_b) == platform_brand()  # another tree


def test_the_text_colour_is_chosen_for_contrast(world, brand_a, brand_b):
    assert effective_brand(world.org_a).ink == "#ffffff"  # on dark teal
    assert effective_brand(world.org_b).ink == "#000000"  # on amber


# --- the tenants API ----------------------------------------------------------------


def test_managers_set_merge_and_remove_a_brand(world, users, api):
    assert api(users["manager_a"]).get(TENANT.format("reseller-a")).json()["branding"] is None
    response = patch(api, users["manager_a"], "reseller-a",
                     {"branding": {"name": "Acme", "primary_color": "#0F766E"}})  # fmt: skip
    assert response.status_code == 200, response.content
    assert response.json()["branding"] == {
        "name": "Acme", "primary_color": "#0f766e", "logo_url": "", "support_email": "",
        "domain": None, "logo": None, "logo_problem": "",
    }  # fmt: skip
    change = {"domain": "Portal.Acme.Example.", "support_email": "h@acme.example"}
    response = patch(api, users["manager_a"], "reseller-a", {"branding": change})
    branding = response.json()["branding"]
    assert (branding["name"], branding["domain"]) == ("Acme", "portal.acme.example")  # merged
    response = patch(api, users["manager_a"], "reseller-a", {"branding": {"name": None}})
    assert response.json()["branding"]["name"] == ""
    response = patch(api, users["manager_a"], "reseller-a", {"branding": None})
    assert response.json()["branding"] is None and not Brand.objects.exists()


@pytest.mark.parametrize(
    ("branding", "field", "words"),
    [
        ({"primary_color": "teal"}, "branding.primary_color", "#rrggbb"),
        ({"primary_color": "#12345g"}, "branding.primary_color", "#rrggbb"),
        ({"domain": "10.0.0.1"}, "branding.domain", "not an IP address"),
        ({"domain": "localhost"}, "branding.domain", "host name"),
        ({"domain": "portal.example.com:8443"}, "branding.domain", "without a scheme, port"),
        ({"domain": "https://portal.example.com"}, "branding.domain", "without a scheme"),
        ({"domain": "bad_name.example.com"}, "branding.domain", "letters, digits and hyphens"),
        ({"logo_url": "javascript:alert(1)"}, "branding.logo_url", "http"),
        ({"support_email": "not an address"}, "branding.support_email", "email"),
        ({"name": "Two\nlines"}, "branding.name", "Control character"),
        ({"colour": "#112233"}, "branding.colour", "Unknown key"),
        ({"name": "x" * 101}, "branding.name", "100 characters"),
        ("Acme", "branding", "dictionary"),
    ],
)
def test_bad_brands_are_400_naming_the_key(world, users, api, branding, field, words):
    response = patch(api, users["manager_a"], "reseller-a", {"branding": branding, "name": "New"})
    assert response.status_code == 400, response.content
    errors = fields_in(response)
    assert field in errors and words.lower() in errors[field].lower(), errors
    world.reseller_a.refresh_from_db()
    assert (
        world.reseller_a.name == "Reseller A" and not Brand.objects.exists()
    )  # nothing half-written


def test_the_platforms_own_hosts_cannot_be_claimed(world, users, api, settings):
    settings.ALLOWED_HOSTS = AllowedHosts(["testserver", "usage.example.net", ".platform.example"])
    for domain in ("usage.example.net", "eu.platform.example", "platform.example"):
        response = patch(api, users["manager_a"], "reseller-a", {"branding": {"domain": domain}})
        assert fields_in(response)["branding.domain"].startswith(
            "This host name is the portal's own"
        )


def test_a_domain_belongs_to_one_brand_whatever_its_case(world, users, api, brand_a):
    response = patch(api, users["manager_b"], "reseller-b",
                     {"branding": {"domain": "PORTAL.acme.example"}})  # fmt: skip
    assert fields_in(response) == {
        "branding.domain": "This domain is not available; choose another."
    }


def test_only_partners_and_resellers_carry_a_brand(world, users, api):
    response = patch(api, users["manager_a"], "org-a", {"branding": {"name": "Mine"}})
    assert fields_in(response) == {"branding": "Only partners and resellers carry a brand."}


def test_another_resellers_manager_can_neither_read_nor_change_a_brand(world, users, api, brand_a):
    for user in (users["manager_b"], users["org_a"].__class__.objects.get(username="bob")):
        assert api(user).get(TENANT.format("reseller-a")).status_code == 404
        assert patch(api, user, "reseller-a", {"branding": {"name": "Mine"}}).status_code == 404
        assert patch(api, user, "reseller-a", {"branding": None}).status_code == 404
    # Viewers and the organization's staff below read the tenants they see but change nothing.
    assert patch(api, users["viewer_a"], "reseller-a", {"branding": None}).status_code == 403
    assert patch(api, users["org_a"], "org-a", {"branding": {"name": "x"}}).status_code == 403
    assert Brand.objects.get().name == "Acme Telecom"


def test_the_partner_above_may_brand_its_reseller(world, users, api):
    response = patch(api, users["partner"], "reseller-a", {"branding": {"name": "Set above"}})
    assert response.status_code == 200
    assert effective_brand(world.org_a).name == "Set above"


def test_a_tenant_can_be_created_with_its_brand(world, users, api):
    body = {"slug": "reseller-c", "name": "Reseller C", "kind": "reseller", "parent": "partner-p",
            "branding": {"name": "Charlie", "primary_color": "#123456"}}  # fmt: skip
    response = api(users["partner"]).post("/api/v1/tenants/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["branding"]["name"] == "Charlie"
    body = {**body, "slug": "reseller-d", "branding": {"primary_color": "red"}}
    response = api(users["partner"]).post("/api/v1/tenants/", body, format="json")
    assert response.status_code == 400
    assert not type(world.partner).objects.filter(slug="reseller-d").exists()


# --- pages --------------------------------------------------------------------------


def page_text(client, url: str) -> str:
    response = client.get(url, follow=True, HTTP_ACCEPT="text/html")
    assert response.status_code in (200, 404), (url, response.status_code)
    return response.content.decode()


def test_organization_staff_see_only_their_resellers_brand(world, users, login, brand_a, brand_b):
    client = login(users["org_a"])
    urls = ["/reports/", "/reports/t/org-a/", "/reports/t/org-a/records/",
            "/reports/t/org-a/statements/", "/reports/t/reseller-b/", "/no-such-page/",
            "/api/v1/", "/api/docs/"]  # fmt: skip
    for url in urls:
        html = page_text(client, url)
        assert "Acme Telecom" in html, url
        assert "Usage Portal" not in html and "Bravo Cloud" not in html, url
    report = page_text(client, "/reports/t/org-a/")
    assert "--brand: #0f766e; --brand-ink: #ffffff;" in report
    assert "<title>Org A · Acme Telecom</title>" in report
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert schema["info"]["title"] == "Acme Telecom API"
    csv = client.get("/reports/t/org-a/records/csv/")
    assert (
        csv["Content-Disposition"] == 'attachment; filename="records-org-a.csv"'
    )  # no product name


def test_operators_and_partners_see_their_own_brand_on_a_resellers_pages(
    world, users, login, brand_a
):
    Brand.objects.create(tenant=world.partner, name="Partner Brand")
    for user, expected in (
        (users["superuser"], "Usage Portal"),
        (users["partner"], "Partner Brand"),
    ):
        html = page_text(login(user), "/reports/t/reseller-a/")
        assert f'<span class="brand-name">{expected}</span>' in html
        assert "Acme Telecom" not in html


def test_the_admin_names_the_viewers_brand(world, users, login, brand_a):
    html = page_text(login(users["manager_a"]), "/admin/")
    assert "Acme Telecom administration" in html and "Usage Portal" not in html


def test_the_sign_in_page_shows_the_brand_of_the_domain_it_is_reached_at(
    world, client, brand_a, brand_hosts
):
    html = client.get("/accounts/login/", HTTP_HOST="portal.acme.example").content.decode()
    assert "Acme Telecom" in html and "Usage Portal" not in html
    html = client.get("/accounts/login/", HTTP_HOST="PORTAL.ACME.EXAMPLE:443").content.decode()
    assert "Acme Telecom" in html
    html = client.get("/accounts/login/", HTTP_HOST="localhost").content.decode()
    assert "Usage Portal" in html and "Acme Telecom" not in html
    # Any other host is still refused.
    assert client.get("/accounts/login/", HTTP_HOST="evil.example").status_code == 400


def test_a_new_domain_is_answered_at_once_and_a_removed_one_no_longer(
    world, users, api, client, brand_hosts
):
    assert client.get("/accounts/login/", HTTP_HOST="new.acme.example").status_code == 400
    patch(api, users["manager_a"], "reseller-a", {"branding": {"domain": "new.acme.example"}})
    assert client.get("/accounts/login/", HTTP_HOST="new.acme.example").status_code == 200
    patch(api, users["manager_a"], "reseller-a", {"branding": None})
    assert client.get("/accounts/login/", HTTP_HOST="new.acme.example").status_code == 400


def test_signed_in_at_a_brands_domain_a_user_sees_their_own_brand(
    world, users, client, brand_a, brand_b, brand_hosts
):
    client.force_login(users["manager_b"])
    html = client.get("/reports/", HTTP_HOST="portal.acme.example", follow=True).content.decode()
    assert "Bravo Cloud" in html and "Acme Telecom" not in html


# --- mail ---------------------------------------------------------------------------


def test_alert_mail_carries_the_recipients_brand(
    world, brand_a, report_usage, billed, django_capture_on_commit_callbacks
):
    make_user("ann", world.org_a, "manager", email="ann@org-a.example")
    make_user("rita", world.reseller_a, "manager", email="rita@acme.example")
    mail.outbox.clear()
    from billing.models import UsageAlert

    UsageAlert.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        check_alerts()
    assert mail.outbox, "an alert was mailed"
    for message in mail.outbox:
        assert message.from_email.startswith('"Acme Telecom" <') or message.from_email.startswith(
            "Acme Telecom <"
        )
        assert message.reply_to == ["help@acme.example"]
        assert message.subject.startswith("[Acme Telecom] Org A:")
        assert "Acme Telecom" in message.body and "Usage Portal" not in message.body
    assert sorted(mail.outbox[0].to) == ["ann@org-a.example", "rita@acme.example"]


def test_managers_of_differently_branded_tenants_get_their_own_brand(world, brand_a, brand_b):
    make_user("ann", world.org_a, "manager", email="ann@example.com")
    make_user("bea", world.org_b, "manager", email="bea@example.com")
    groups = managers_by_brand([world.org_a, world.org_b])
    assert [(brand.name, emails) for brand, emails in groups] == [
        ("Acme Telecom", ["ann@example.com"]), ("Bravo Cloud", ["bea@example.com"]),
    ]  # fmt: skip


# --- logos --------------------------------------------------------------------------


def test_an_uploaded_logo_is_served_by_the_portal(world, users, login, brand_a):
    client = login(users["manager_a"])
    url = reverse("admin:accounts_tenant_change", args=[world.reseller_a.pk])
    form = client.get(url).context["adminform"].form
    assert form.instance == world.reseller_a
    png = bars_logo("#0f766e")
    from io import BytesIO

    upload = BytesIO(png)
    upload.name = "logo.png"
    data = admin_post_data(client, url)
    data["brand-0-logo_file"] = upload
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    brand = Brand.objects.get()
    assert bytes(brand.logo) == png and brand.logo_type == "image/png"
    src = reverse("brand-logo", args=[brand.logo_hash])
    assert f'src="{src}"' in page_text(login(users["org_a"]), "/reports/")
    served = client.get(src)
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert served.content == png and "immutable" in served["Cache-Control"]
    assert client.get(reverse("brand-logo", args=["0" * 64])).status_code == 404


def test_an_svg_or_oversized_upload_is_refused(world, users, login, brand_a):
    from io import BytesIO

    client = login(users["manager_a"])
    url = reverse("admin:accounts_tenant_change", args=[world.reseller_a.pk])
    oversized = b"\x89PNG\r\n\x1a\n" + b"0" * (600 * 1024)
    for content, words in (
        (b"<svg onload='alert(1)'/>", "not a PNG"),
        (oversized, "larger than 512 KB"),
    ):
        upload = BytesIO(content)
        upload.name = "logo.png"
        data = admin_post_data(client, url)
        data["brand-0-logo_file"] = upload
        response = client.post(url, data)
        assert response.status_code == 200 and words in response.content.decode()
    assert not Brand.objects.get().logo


def admin_post_data(client, url) -> dict:
    """The change form's current values, as the browser would post them back."""
    response = client.get(url)
    data = {}
    for form in [response.context["adminform"].form] + [
        f for formset in response.context["inline_admin_formsets"] for f in formset.formset.forms
    ]:
        for name in form.fields:
            value = form[name].value()
            if value is None or name in ("logo_file",):
                continue
            if isinstance(value, bool):
                if value:
                    data[form.add_prefix(name)] = "on"
                continue
            data[form.add_prefix(name)] = value.pk if hasattr(value, "pk") else value
    for formset in response.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        for name in management.fields:
            data[management.add_prefix(name)] = management[name].value()
    return data


@pytest.fixture
def logo_server():
    """A web server on loopback answering each path with what the test sets."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers: dict[str, tuple[int, bytes, dict]] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body, headers = answers.get(self.path, (404, b"missing", {}))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.answers = answers
    server.base = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()


def test_a_logo_url_is_fetched_once_and_served_from_the_portal(
    world, users, api, logo_server, settings, django_capture_on_commit_callbacks
):
    settings.USAGE_LOGO_ALLOW_PRIVATE = True
    png = bars_logo("#6d28d9")
    logo_server.answers["/logo.png"] = (200, png, {"Content-Type": "text/html"})
    url = f"{logo_server.base}/logo.png"
    from django_q.models import OrmQ

    with django_capture_on_commit_callbacks(execute=True):
        response = patch(api, users["manager_a"], "reseller-a", {"branding": {"logo_url": url}})
    assert response.json()["branding"]["logo"] is None  # fetched by a task, not the request
    assert OrmQ.objects.count() == 1
    assert fetch_logo(Brand.objects.get().pk) == "stored"
    brand = Brand.objects.get()
    assert bytes(brand.logo) == png and brand.logo_type == "image/png"  # sniffed, not as told
    branding = api(users["manager_a"]).get(TENANT.format("reseller-a")).json()["branding"]
    assert branding["logo_url"] == url and branding["logo"].endswith(
        f"/brand/logo/{brand.logo_hash}/"
    )


@pytest.mark.parametrize(
    ("answer", "allow_private", "words"),
    [
        ((200, b"<svg/>", {}), True, "not a PNG, JPEG, GIF or WebP"),
        ((200, b"\x89PNG\r\n\x1a\n" + b"0" * (513 * 1024), {}), True, "larger than 512 KB"),
        ((302, b"", {"Location": "http://169.254.169.254/"}), True, "answered HTTP 302"),
        ((404, b"", {}), True, "answered HTTP 404"),
        ((200, b"\x89PNG\r\n\x1a\n", {}), False, "private, loopback or reserved address"),
    ],
)
def test_a_logo_url_that_gives_no_usable_image_is_explained(
    world, logo_server, settings, answer, allow_private, words
):
    settings.USAGE_LOGO_ALLOW_PRIVATE = allow_private
    logo_server.answers["/x"] = answer
    brand = Brand.objects.create(tenant=world.reseller_a, logo_url=f"{logo_server.base}/x")
    assert words in fetch_logo(brand.pk)
    brand.refresh_from_db()
    assert words in brand.logo_problem and not brand.logo and not brand.logo_hash


def test_a_logo_fetched_after_the_url_changed_is_dropped(world, logo_server, settings):
    settings.USAGE_LOGO_ALLOW_PRIVATE = True
    logo_server.answers["/old.png"] = (200, bars_logo("#000000"), {})
    brand = Brand.objects.create(tenant=world.reseller_a, logo_url=f"{logo_server.base}/old.png")
    Brand.objects.filter(pk=brand.pk).update(logo_url="https://cdn.example/new.png")
    fetch_logo(brand.pk)
    brand.refresh_from_db()
    assert not brand.logo and brand.logo_url == "https://cdn.example/new.png"
