from dataclasses import dataclass

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Tenant
from tests.factories import PASSWORD, make_tenant, make_user


def pytest_configure(config):
    from django.conf import settings

    # Hashing demo passwords at full strength would dominate the suite's run time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The test client and the live test server speak plain HTTP.
    settings.SECURE_SSL_REDIRECT = False
    # Pages render from the source static files; no collectstatic manifest needed.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # Throttle and sign-in counters start from zero in every test (see fresh_counters).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(autouse=True)
def fresh_counters():
    from django.core.cache import cache

    cache.clear()
    yield


@dataclass
class World:
    """Two resellers side by side: A under a partner, B directly under the platform."""

    partner: Tenant
    reseller_a: Tenant
    org_a: Tenant
    agent_a: Tenant
    reseller_b: Tenant
    org_b: Tenant
    agent_b: Tenant


@pytest.fixture
def world(db) -> World:
    partner = make_tenant("partner", slug="partner-p")
    reseller_a = make_tenant("reseller", partner, slug="reseller-a")
    org_a = make_tenant("organization", reseller_a, slug="org-a", external_id="EXT-ORG-A")
    agent_a = make_tenant("agent", org_a, slug="agent-a")
    reseller_b = make_tenant("reseller", None, slug="reseller-b")
    org_b = make_tenant("organization", reseller_b, slug="org-b")
    agent_b = make_tenant("agent", org_b, slug="agent-b")
    return World(partner, reseller_a, org_a, agent_a, reseller_b, org_b, agent_b)


@pytest.fixture
def users(world):
    return {
        "superuser": make_user("root", is_staff=True, is_superuser=True),
        "partner": make_user("pat", world.partner, "manager", is_staff=True),
        "manager_a": make_user("alice", world.reseller_a, "manager", is_staff=True),
        "viewer_a": make_user("victor", world.reseller_a, "viewer"),
        "manager_b": make_user("bob", world.reseller_b, "manager", is_staff=True),
        "org_a": make_user("olga", world.org_a, "viewer"),
        "nobody": make_user("nemo"),
    }


@pytest.fixture
def api():
    def client_for(user=None):
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def login(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user


def database_url() -> str:
    """A DATABASE_URL for child processes, pointing at the current test database."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    host = f"{s['HOST'] or 'localhost'}:{s['PORT'] or 5432}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{host}/{s['NAME']}"


@pytest.fixture
def child_env(transactional_db):
    """Environment for a subprocess that must see the test database."""
    import os

    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env["DJANGO_HTTPS"] = "0"
    return env


__all__ = ["PASSWORD"]


@pytest.fixture(autouse=True)
def meter_catalog(request):
    """Transactional tests flush every table when they end, the migrated meter catalog
    included; put it back for the tests that use the database after them."""
    if "_django_db_helper" in request.fixturenames:
        request.getfixturevalue("_django_db_helper")
        from metering.catalog import catalog_rows
        from metering.models import Meter

        rows = catalog_rows()
        if Meter.objects.filter(code__in=[r["code"] for r in rows]).count() < len(rows):
            for row in rows:
                Meter.objects.get_or_create(code=row["code"], defaults=row)
    yield
