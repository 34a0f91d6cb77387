import csv
import io
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import ApiKey
from metering.ingestion import ingest_events

EVENTS = "/api/v1/events/"


@pytest.fixture
def recorded(world, users):
    """Events on both resellers' agents over three days."""
    now = timezone.now()
    events = []
    for day in range(3):
        at = (now - timedelta(days=day, hours=1)).isoformat()
        for slug in ("agent-a", "org-a", "agent-b"):
            events.append(
                {
                    "event_id": f"{slug}-{day}-call",
                    "tenant": slug,
                    "meter": "call_minutes",
                    "quantity": "2.5",
                    "timestamp": at,
                    "attributes": {"direction": "outbound"},
                }
            )
            events.append(
                {
                    "event_id": f"{slug}-{day}-pu",
                    "tenant": slug,
                    "meter": "processing_units",
                    "quantity": "10",
                    "timestamp": at,
                    "source": "service",
                    "attributes": {"activity": "ocr"},
                }
            )
    ingest_events(events, principal=users["superuser"])
    return events


def ids(response):
    return {r["event_id"] for r in response.json()["results"]}


def test_records_are_scoped_and_shaped(recorded, users, api):
    response = api(users["manager_a"]).get(EVENTS)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert len(body["results"]) == 12
    assert all(r["tenant"] in {"agent-a", "org-a"} for r in body["results"])
    record = next(r for r in body["results"] if r["event_id"] == "agent-a-0-call")
    assert record["quantity"] == "2.500000"
    assert record["meter"] == "call_minutes" and record["unit"] == "minutes"
    assert record["category"] == "communications" and record["source"] == "api"
    assert record["attributes"] == {"direction": "outbound"}


def test_filters(recorded, users, api):
    client = api(users["superuser"])
    assert ids(client.get(EVENTS, {"tenant": "org-a"})) == {
        e["event_id"] for e in recorded if e["tenant"] in ("org-a", "agent-a")
    }
    assert all(
        r["meter"] == "processing_units"
        for r in client.get(EVENTS, {"meter": "processing_units"}).json()["results"]
    )
    assert len(ids(client.get(EVENTS, {"category": "processing"}))) == 9
    assert len(ids(client.get(EVENTS, {"source": "service"}))) == 9
    today = timezone.now().date()
    recent = client.get(EVENTS, {"start": str(today - timedelta(days=1))}).json()["results"]
    assert 6 <= len(recent) <= 12
    through_yesterday = client.get(EVENTS, {"end": str(today - timedelta(days=1))})
    assert len(ids(through_yesterday)) in (12, 6)  # near midnight the last event may move


def test_filter_by_another_resellers_tenant_is_404(recorded, users, api):
    assert api(users["manager_a"]).get(EVENTS, {"tenant": "agent-b"}).status_code == 404


def test_cursor_pagination_walks_every_record_once(recorded, users, api):
    client = api(users["superuser"])
    seen, url = [], EVENTS + "?page_size=4"
    while url:
        body = client.get(url).json()
        seen.extend(r["event_id"] for r in body["results"])
        url = body["next"]
    assert sorted(seen) == sorted(e["event_id"] for e in recorded)


def test_csv_streams_every_matching_row(recorded, users, api):
    response = api(users["manager_a"]).get(EVENTS, {"format": "csv", "meter": "call_minutes"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 6
    assert {r["tenant"] for r in rows} == {"agent-a", "org-a"}
    assert sum(Decimal(r["quantity"]) for r in rows) == Decimal("15")
    json_rows = api(users["manager_a"]).get(EVENTS, {"meter": "call_minutes"}).json()["results"]
    assert {r["event_id"] for r in rows} == {r["event_id"] for r in json_rows}
    # Attributes come out as JSON, the same objects the JSON answer holds.
    by_id = {r["event_id"]: r["attributes"] for r in json_rows}
    assert all(json.loads(r["attributes"]) == by_id[r["event_id"]] for r in rows)
    assert any(json.loads(r["attributes"]) for r in rows)


def test_read_key_lists_its_subtree_and_ingest_key_cannot_read(recorded, world, client):
    _, read_key = ApiKey.objects.create_key(name="r", tenant=world.org_a, scopes=["read"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {read_key}"
    assert {r["tenant"] for r in client.get(EVENTS).json()["results"]} == {"org-a", "agent-a"}
    _, ingest_key = ApiKey.objects.create_key(name="i", tenant=world.org_a, scopes=["ingest"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {ingest_key}"
    assert client.get(EVENTS).status_code == 403


def test_meters_catalog(db, users, api):
    body = api(users["viewer_a"]).get("/api/v1/meters/", {"page_size": 100}).json()
    meters = {m["code"]: m for m in body["results"]}
    assert {
        "processing_units",
        "storage_units",
        "bandwidth_units",
        "licenses",
        "portals",
        "call_minutes",
        "chat_sessions",
        "sip_integrations",
        "emails",
        "active_users",
    } <= set(meters)
    assert meters["storage_units"] == {
        "code": "storage_units",
        "name": "Storage units",
        "category": "storage",
        "unit": "SU",
        "aggregation": "max",
        "group_by": "tier",
    }


def test_create_api_key_command_prints_a_working_key(world, client, capsys):
    call_command("create_api_key", "reseller-a", "--scope", "ingest", "--scope", "read")
    key = capsys.readouterr().out.strip()
    stored = ApiKey.objects.get()
    assert stored.tenant == world.reseller_a and sorted(stored.scopes) == ["ingest", "read"]
    assert key not in stored.hashed_key
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
    assert client.get(EVENTS).status_code == 200


def test_schema_and_offline_docs(db, client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/events/" in text and "ApiKeyAuth" in text and "One event" in text
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "swagger-ui" in page and "cdn" not in page.lower()
