"""The sign-in lockout counts the account sign-in resolves to, not the username as
typed, and the client's address behind trusted proxies, not the proxy's."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.login_guard import login_identity
from tests.factories import PASSWORD
from usage_portal.settings import trusted_proxies
from utilities.client_address import client_address

FULLWIDTH_ALICE = "\uff41lice"  # ａlice: Django signs it in as alice


@pytest.fixture
def limit(settings):
    settings.LOGIN_FAILURE_LIMIT = 3
    return 3


def login(client, username, password="wrong", **headers):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, **headers
    ).status_code


def token(client, username, password="wrong", **headers):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, **headers
    ).status_code


def test_a_fullwidth_username_signs_in_as_the_plain_one(users, client):
    assert login(client, FULLWIDTH_ALICE, PASSWORD) == 302


def test_guesses_through_a_fullwidth_variant_lock_the_account(users, client, limit):
    for _ in range(limit):
        assert login(client, FULLWIDTH_ALICE) == 200
    assert login(client, "alice", PASSWORD) == 429
    assert token(client, "alice", PASSWORD) == 429


def test_a_locked_account_stays_locked_under_any_variant(users, client, limit):
    for _ in range(limit):
        login(client, "alice")
    for variant in (FULLWIDTH_ALICE, "ALICE", " alice ", "Alice"):
        assert login(client, variant, PASSWORD) == 429, variant
        assert token(client, variant, PASSWORD) == 429, variant


def test_token_guesses_through_variants_count_together(users, client, limit):
    for variant in (FULLWIDTH_ALICE, "ALICE", "alice"):
        assert token(client, variant) == 400
    assert login(client, "alice", PASSWORD) == 429


def test_login_identity_is_nfkc_and_casefolded():
    assert login_identity("\uff30artner") == login_identity("partner") == "partner"
    assert login_identity(" Stra\u00dfe ") == "strasse"
    assert login_identity("\u212bngstr\u00f6m") == login_identity("\u00c5ngstr\u00f6m")


def request_from(remote: str, forwarded: str | None = None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **headers)


@pytest.mark.parametrize(
    "trusted, remote, forwarded, client",
    [
        ([], "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        (["10.0.0.1"], "203.0.113.9", "198.51.100.1", "203.0.113.9"),
        (["10.0.0.1"], "10.0.0.1", None, "10.0.0.1"),
        (["10.0.0.1"], "10.0.0.1", "198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.1", "1.1.1.1, 198.51.100.1, 10.2.3.4", "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.1", "10.9.9.9, 10.2.3.4", "10.9.9.9"),
        (["10.0.0.0/8"], "10.0.0.1", "198.51.100.1:4711", "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.1", "[2001:db8::1]:4711", "2001:db8::1"),
        (["10.0.0.0/8"], "10.0.0.1", "spoofed, 198.51.100.1", "198.51.100.1"),
        (["10.0.0.0/8"], "10.0.0.1", "198.51.100.1, garbage", "10.0.0.1"),
        (["10.0.0.0/8", "fd00::/8"], "fd00::1", "::ffff:198.51.100.1", "198.51.100.1"),
        (["::ffff:0:0/96", "10.0.0.0/8"], "::ffff:10.0.0.1", "198.51.100.7", "198.51.100.7"),
    ],
)
def test_client_address(settings, trusted, remote, forwarded, client):
    settings.USAGE_TRUSTED_PROXIES = trusted
    assert client_address(request_from(remote, forwarded)) == client


def test_trusted_proxies_setting_is_checked_at_start():
    assert trusted_proxies(" 10.0.0.1, 10.1.0.0/16 ,fd00::/8,") == [
        "10.0.0.1",
        "10.1.0.0/16",
        "fd00::/8",
    ]
    assert trusted_proxies("") == []
    with pytest.raises(ImproperlyConfigured):
        trusted_proxies("10.0.0.1, proxy.example.com")


def test_behind_a_trusted_proxy_one_client_cannot_lock_out_another(users, client, settings, limit):
    settings.USAGE_TRUSTED_PROXIES = ["10.0.0.0/8"]
    attacker = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "198.51.100.66"}
    alice = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.5"}
    for _ in range(limit):
        login(client, "alice", **attacker)
    assert login(client, "alice", PASSWORD, **attacker) == 429
    assert login(client, "alice", PASSWORD, **alice) == 302


def test_a_forged_forwarded_header_does_not_escape_the_lockout(users, client, limit):
    for n in range(limit):
        login(client, "alice", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    assert login(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.200") == 429
    assert token(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="198.51.100.201") == 429


def test_anonymous_throttling_ignores_a_forged_forwarded_header(client, monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"ingest": "3/min", "read": "2/min"})
    monkeypatch.setitem(api_settings.DEFAULT_THROTTLE_RATES, "read", "2/min")
    codes = [
        client.get("/api/docs/", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]
