from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal as D

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import PlatformPrincipal, Tenant
from billing.alerts import check_alerts
from billing.models import Plan, PlanItem
from billing.periods import month_of
from billing.plans import subscribe
from billing.tasks import after_rollup
from metering.ingestion import ingest_events
from metering.models import Meter
from reports.date_ranges import THIS_MONTH, preset_range
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


def clear_event_store() -> None:
    """ClickHouse takes no part in the test's transaction: empty it for each test
    (and each example of a property test), as the rollback empties the tables."""
    from django.conf import settings

    if settings.USAGE_EVENT_STORE == "clickhouse":
        from metering.clickhouse import client, events_table

        client.command(f"TRUNCATE TABLE {events_table()}")


@pytest.fixture(scope="session", autouse=True)
def clickhouse_schema():
    from django.conf import settings

    if settings.USAGE_EVENT_STORE == "clickhouse":
        from metering.clickhouse.schema import migrate

        migrate(report=lambda line: None)


@pytest.fixture(autouse=True)
def fresh_event_store():
    clear_event_store()
    yield


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

    from metering.clickhouse import is_embedded
    from metering.stores import uses_clickhouse

    if uses_clickhouse() and is_embedded():
        pytest.skip("the embedded ClickHouse engine serves one process: this test starts others")

    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env["DJANGO_HTTPS"] = "0"
    return env


def event(n, tenant, meter, quantity, at, **attributes):
    return {
        "event_id": f"r{n}",
        "tenant": tenant,
        "meter": meter,
        "quantity": quantity,
        "timestamp": at.isoformat(),
        "attributes": attributes,
    }


@pytest.fixture
def report_usage(world):
    """Usage this month (first thing today, UTC) and in the period before, for both resellers."""
    today = timezone.now().date()
    now = datetime.combine(today, time(0, 0, 1), tzinfo=UTC)
    before = datetime.combine(
        preset_range(THIS_MONTH, today).start - timedelta(days=1), time(12), tzinfo=UTC
    )
    rows = [
        ("agent-a", "call_minutes", "12.5", now, {"direction": "inbound"}),
        ("agent-a", "call_minutes", "2.25", now, {"direction": "outbound"}),
        ("agent-a", "call_minutes", "10", before, {"direction": "inbound"}),
        ("agent-a", "emails", "3", now, {"direction": "outbound"}),
        ("org-a", "call_minutes", "1.5", now, {"direction": "inbound"}),
        ("org-a", "licenses", "7", now, {"license_type": "viewer"}),
        ("agent-a", "processing_units", "1234.5", now, {"activity": "transcription"}),
        ("agent-b", "call_minutes", "99", now, {"direction": "inbound"}),
        ("agent-b", "call_minutes", "50", before, {"direction": "inbound"}),
    ]
    ingest_events(
        [event(n, *row[:4], **row[4]) for n, row in enumerate(rows)],
        principal=PlatformPrincipal(),
    )
    return today


@pytest.fixture
def billed(world, report_usage):
    """A month of statements and alerts: Org A on a reseller's retail plan (a 20-minute
    limit, alerts at 50 and 100 %), Reseller A on its partner's wholesale plan."""
    period = month_of(timezone.now().date())
    meter = Meter.objects.get(code="call_minutes")
    retail = Plan.objects.create(code="a-retail", name="Retail", owner=world.reseller_a,
                                 base_fee=D("100"))  # fmt: skip
    PlanItem.objects.create(plan=retail, meter=meter, included_quantity=D("10"),
                            limit=D("20"), unit_price=D("0.5"), thresholds=[50, 100])  # fmt: skip
    wholesale = Plan.objects.create(code="a-wholesale", name="Wholesale", owner=world.partner,
                                    customer=world.reseller_a, base_fee=D("40"))  # fmt: skip
    PlanItem.objects.create(plan=wholesale, meter=meter, unit_price=D("0.2"))
    subscribe(tenant=world.org_a, plan=retail, starts_on=period)
    subscribe(tenant=world.reseller_a, plan=wholesale, starts_on=period)
    after_rollup()
    check_alerts()
    return period


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
