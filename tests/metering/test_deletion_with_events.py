"""A tenant or meter whose usage events are stored is never deleted, in either event store:
the event table's foreign key protects it, and with events in ClickHouse the
store is asked."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.models import PlatformPrincipal, Tenant
from metering.ingestion import ingest_events
from metering.models import Meter
from tests.factories import make_tenant


def send_one(tenant: Tenant):
    at = (timezone.now() - timedelta(hours=1)).isoformat()
    event = {"event_id": "kept-1", "tenant": tenant.slug, "meter": "emails", "quantity": 1,
             "timestamp": at}  # fmt: skip
    assert ingest_events([event], principal=PlatformPrincipal()).accepted == 1


def delete_url(tenant: Tenant) -> str:
    return f"/admin/accounts/tenant/{tenant.pk}/delete/"


def test_the_admin_refuses_to_delete_a_tenant_with_events(world, users, login):
    send_one(world.agent_a)
    client = login(users["superuser"])
    page = client.get(delete_url(world.agent_a)).content.decode()
    assert "would require deleting the following protected related objects" in page
    client.post(delete_url(world.agent_a), {"post": "yes"})
    assert Tenant.objects.filter(pk=world.agent_a.pk).exists()


def test_no_code_path_deletes_a_tenant_with_events(world):
    send_one(world.agent_a)
    # (Refused inside the deletion's transaction in one store, before it in the other.)
    with pytest.raises(ProtectedError), transaction.atomic():
        world.agent_a.delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        Tenant.objects.filter(pk=world.agent_a.pk).delete()
    assert Tenant.objects.filter(pk=world.agent_a.pk).exists()


def test_a_tenant_without_events_is_deleted(world, users, login):
    send_one(world.agent_a)
    idle = make_tenant("agent", world.org_a, slug="idle-agent")
    client = login(users["superuser"])
    assert "protected" not in client.get(delete_url(idle)).content.decode()
    client.post(delete_url(idle), {"post": "yes"})
    assert not Tenant.objects.filter(slug="idle-agent").exists()


def meter_url(meter: Meter, action: str = "change") -> str:
    return f"/admin/metering/meter/{meter.pk}/{action}/"


def test_a_meter_with_events_keeps_its_code_and_is_not_deleted(world, users, login):
    send_one(world.agent_a)
    emails, unused = Meter.objects.get(code="emails"), Meter.objects.get(code="portals")
    client = login(users["superuser"])
    assert 'name="code"' not in client.get(meter_url(emails)).content.decode()
    assert 'name="code"' in client.get(meter_url(unused)).content.decode()
    page = client.get(meter_url(emails, "delete")).content.decode()
    assert "would require deleting the following protected related objects" in page
    client.post(meter_url(emails, "delete"), {"post": "yes"})
    assert Meter.objects.filter(pk=emails.pk).exists()
    with pytest.raises(ProtectedError), transaction.atomic():
        emails.delete()
    client.post(meter_url(unused, "delete"), {"post": "yes"})
    assert not Meter.objects.filter(pk=unused.pk).exists()


def test_a_meter_with_events_keeps_its_code_when_its_form_is_sent(world, users, login):
    send_one(world.agent_a)
    emails = Meter.objects.get(code="emails")
    client = login(users["superuser"])
    form = client.get(meter_url(emails)).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None}
    saved = client.post(meter_url(emails), {**data, "code": "mails", "name": "Mail"})
    assert saved.status_code == 302  # the form was valid and saved
    emails.refresh_from_db()
    assert (emails.code, emails.name) == ("emails", "Mail")
