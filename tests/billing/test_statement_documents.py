"""Statement documents: the PDF says what the statements API says, in the issuer's
brand, with a number once final and a DRAFT watermark before; 404 outside scope."""

from decimal import Decimal as D

import pytest
from django.conf import settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import ApiKey
from billing.models import Plan, Statement
from billing.statements import refresh_statement
from tests.billing.statement_world import (
    BRAND_NAME,
    bill_closed_month,
    brand_reseller,
    closed_month,
    grouped,
    pdf_images,
    pdf_text,
    tiered_plan,
)


@pytest.fixture
def draft(world):
    brand_reseller(world.reseller_a)
    return bill_closed_month(world.org_a, tiered_plan(world.reseller_a))


@pytest.fixture
def final(draft, world):
    return refresh_statement(world.org_a, draft.period, final=True)


def api_statement(api, user, statement) -> dict:
    period = f"{statement.period:%Y-%m}"
    response = api(user).get(
        "/api/v1/statements/", {"tenant": statement.tenant.slug, "period": period}
    )
    assert response.status_code == 200
    [body] = response.json()["results"]
    return body


def api_pdf(api, user, statement) -> bytes:
    response = api(user).get(f"/api/v1/statements/{statement.pk}/pdf/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    return response.content


def page_pdf(client, user, statement) -> bytes:
    client.force_login(user)
    url = reverse("reports:statement_pdf", args=[statement.tenant.slug,
                                                 f"{statement.period:%Y-%m}"])  # fmt: skip
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    return response.content


def test_final_statement_pdf_shows_the_apis_figures(final, api, users, client):
    body = api_statement(api, users["manager_a"], final)
    data = api_pdf(api, users["manager_a"], final)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    currency = body["currency"]
    assert body["number"] == f"{final.period:%Y-%m}-{final.pk:06d}"
    assert f"Statement {body['number']}" in text  # the footer
    assert f"Number {body['number']}" in text
    assert body["period"] in text and f"{final.period:%B %Y}" in text
    assert BRAND_NAME in text and final.tenant.name in text
    assert f"Currency {currency}" in text
    for name in ("base_fee", "usage_amount", "true_up", "total"):
        assert f"{grouped(body[name])} {currency}" in text, name
    assert f"Total {grouped(body['total'])} {currency}" in text
    assert (body["total"], body["true_up"]) == ("1500.00", "493.25")  # read by hand
    [line] = body["lines"]
    assert line["amount"] == "6.75"
    assert grouped(line["amount"]) in text
    for tier in line["tiers"]:
        assert f"{grouped(tier['units'])}" in text
        assert f"{D(tier['amount']):,.2f}" in text
    assert "0–5" in text and "5–∞" in text and "1.25" in text  # the tiers applied
    assert "DRAFT" not in text
    assert pdf_images(data) == 1  # the brand's logo
    # The page's route serves the same document.
    assert pdf_text(page_pdf(client, users["manager_a"], final)) == text


def test_draft_is_watermarked_and_has_no_number_yet(draft, api, users, client):
    body = api_statement(api, users["manager_a"], draft)
    assert body["status"] == "draft" and body["number"] is None
    text = pdf_text(page_pdf(client, users["org_a"], draft))
    assert "DRAFT" in text
    assert "Number Draft" in text
    assert f"Total {grouped(body['total'])} {body['currency']}" in text


def test_number_is_given_once_at_finalization_and_never_changes(draft, world, users):
    assert draft.number is None
    final = refresh_statement(world.org_a, draft.period, final=True)
    number = final.number
    assert number == f"{draft.period:%Y-%m}-{draft.pk:06d}"
    again = refresh_statement(world.org_a, draft.period, final=True)
    assert again.number == number
    Statement.objects.filter(pk=final.pk).update(as_of=final.as_of)  # any later save
    assert Statement.objects.get(pk=final.pk).number == number


def test_a_platform_plan_is_issued_in_the_platform_brand(world, api, users):
    plan = tiered_plan(None, code="platform-tiered")
    statement = bill_closed_month(world.reseller_b, plan)
    text = pdf_text(api_pdf(api, users["superuser"], statement))
    assert settings.USAGE_BRAND_NAME in text
    assert BRAND_NAME not in text


def test_an_unbranded_issuer_shows_its_nearest_brand_without_a_logo(world, api, users):
    from accounts.models import Brand

    Brand.objects.create(tenant=world.partner, name="Partner Networks")
    statement = bill_closed_month(world.org_a, tiered_plan(world.reseller_a))
    data = api_pdf(api, users["manager_a"], statement)
    assert "Partner Networks" in pdf_text(data)
    assert pdf_images(data) == 0


def test_no_statement_answers_404(world, users, client, api):
    brand_reseller(world.reseller_a)
    client.force_login(users["manager_a"])
    month = f"{closed_month():%Y-%m}"
    assert client.get(reverse("reports:statement_pdf", args=["org-a", month])).status_code == 404
    assert client.get("/reports/t/org-a/statements/2025-13/pdf/").status_code == 404
    assert api(users["manager_a"]).get("/api/v1/statements/999999/pdf/").status_code == 404


def test_another_resellers_statement_pdf_answers_404(world, users, client, draft):
    """B's manager, by session, user token and API key, on both routes."""
    b_manager = users["manager_b"]
    client.force_login(b_manager)
    page = reverse("reports:statement_pdf", args=["org-a", f"{draft.period:%Y-%m}"])
    assert client.get(page).status_code == 404
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=b_manager)}")
    _, key = ApiKey.objects.create_key(name="b", tenant=world.reseller_b, scopes=["read"])
    api_key = APIClient()
    api_key.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    for caller in (token, api_key):
        response = caller.get(f"/api/v1/statements/{draft.pk}/pdf/")
        assert response.status_code == 404
        assert BRAND_NAME.encode() not in response.content
    # Down the tree, an organization's staff see only their own.
    client.force_login(users["org_a"])
    assert client.get(page).status_code == 200


def test_statements_page_links_each_statement_to_its_pdf(final, world, users, client):
    client.force_login(users["manager_a"])
    month = f"{final.period:%Y-%m}"
    pdf = reverse("reports:statement_pdf", args=["org-a", month])
    own = client.get(reverse("reports:statements", args=["org-a"]), {"period": month})
    assert own.status_code == 200
    html = own.content.decode()
    assert html.count(f'href="{pdf}"') == 2  # the statement shown, and its row in the history
    assert final.number in html
    below = client.get(reverse("reports:statements", args=["reseller-a"]), {"period": month})
    assert f'href="{pdf}"' in below.content.decode()  # the customers' table
    csv = client.get(
        reverse("reports:statements_csv", args=["org-a"]), {"table": "statements", "period": month}
    )
    assert "Download PDF" not in b"".join(csv.streaming_content).decode()


def test_plan_copy_switch_is_read_and_written_by_the_api(world, users, api):
    tiered_plan(world.reseller_a)
    client = api(users["manager_a"])
    assert client.get("/api/v1/plans/a-tiered/").json()["copy_statements_to_owner"] is False
    response = client.patch(
        "/api/v1/plans/a-tiered/", {"copy_statements_to_owner": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert Plan.objects.get(code="a-tiered").copy_statements_to_owner is True
