"""Throttling, the sign-in guard, security headers and the deploy check."""

import pytest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.models import ApiKey
from tests.factories import PASSWORD


@pytest.fixture
def tight_rates(monkeypatch):
    rates = {"ingest": "3/min", "read": "4/min"}
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "ingest", "3/min")
    return rates


def event(n):
    return {"event_id": f"t-{n}", "tenant": "agent-a", "meter": "emails", "quantity": 1}


def test_ingest_is_throttled_per_key_with_retry_after(world, tight_rates, client):
    _, key_a = ApiKey.objects.create_key(name="a", tenant=world.reseller_a, scopes=["ingest"])
    _, key_a2 = ApiKey.objects.create_key(name="a2", tenant=world.reseller_a, scopes=["ingest"])

    def post(key, n):
        return client.post(
            "/api/v1/events/", event(n), content_type="application/json",
            HTTP_AUTHORIZATION=f"Api-Key {key}",
        )  # fmt: skip

    assert [post(key_a, n).status_code for n in range(3)] == [201, 201, 201]
    refused = post(key_a, 3)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert "detail" in refused.json()
    # Another key has its own budget; the refused event was not stored.
    assert post(key_a2, 3).status_code == 201


def test_reads_are_throttled_per_user(users, api, tight_rates):
    alice, victor = api(users["manager_a"]), api(users["viewer_a"])
    codes = [alice.get("/api/v1/meters/").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 200, 429]
    assert victor.get("/api/v1/meters/").status_code == 200


def test_password_guessing_is_locked_out(users, client, settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    for _ in range(3):
        response = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    # Locked now, even with the right password; the answer says so and when to retry.
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response["Retry-After"]) == settings.LOGIN_FAILURE_WINDOW_SECONDS
    assert "Too many failed sign-ins" in response.content.decode()
    # Another account is not affected; nor is the token endpoint for it.
    assert (
        client.post("/accounts/login/", {"username": "bob", "password": PASSWORD}).status_code
        == 302
    )
    token = client.post("/api/v1/auth/token/", {"username": "alice", "password": PASSWORD})
    assert token.status_code == 429


def test_token_endpoint_counts_failures_too(users, client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    for _ in range(2):
        assert (
            client.post("/api/v1/auth/token/", {"username": "bob", "password": "x"}).status_code
            == 400
        )
    assert (
        client.post("/api/v1/auth/token/", {"username": "bob", "password": PASSWORD}).status_code
        == 429
    )


def test_success_resets_the_count(users, client, settings):
    settings.LOGIN_FAILURE_LIMIT = 2
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert (
        client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 302
    )
    client.logout()
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert (
        client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 302
    )


def test_pages_carry_security_headers_and_csp(users, login):
    response = login(users["manager_a"]).get("/reports/t/reseller-a/")
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert (
        "frame-ancestors 'none'" in csp
        and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    )
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_api_docs_work_without_inline_scripts(users, login):
    client = login(users["manager_a"])
    page = client.get("/api/docs/").content.decode()
    assert "<script>" not in page.replace(" ", "")
    assert client.get("/api/docs/?script=").status_code == 200
