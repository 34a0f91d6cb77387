"""Every reports URL answers 404 for another reseller's tenants: one test over all of them."""

import pytest
from django.urls import reverse

from reports.urls import urlpatterns

TENANT_URLS = [p.name for p in urlpatterns if "<slug:slug>" in str(p.pattern)]


def test_every_tenant_url_is_covered():
    assert set(TENANT_URLS) == {
        "tenant", "tenant_csv", "chart", "records", "records_csv", "statements", "statements_csv",
        "schedules",
    }  # fmt: skip


@pytest.mark.parametrize("name", TENANT_URLS)
@pytest.mark.parametrize("slug", ["partner-p", "reseller-a", "org-a", "agent-a", "no-such"])
def test_other_reseller_gets_404(report_usage, users, login, name, slug):
    response = login(users["manager_b"]).get(reverse(f"reports:{name}", args=[slug]))
    assert response.status_code == 404
    body = response.content.decode() if not response.streaming else ""
    assert "Reseller A" not in body and "Org A" not in body


@pytest.mark.parametrize("name", TENANT_URLS)
def test_same_urls_answer_their_own_reseller(report_usage, users, login, name):
    response = login(users["manager_b"]).get(reverse(f"reports:{name}", args=["org-b"]))
    assert response.status_code == 200


@pytest.mark.parametrize("name", TENANT_URLS)
def test_anonymous_is_sent_to_login(report_usage, client, name):
    response = client.get(reverse(f"reports:{name}", args=["org-a"]))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
