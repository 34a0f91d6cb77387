import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import ApiKey
from metering.ingestion import MAX_BODY_BYTES
from tests.stored import stored_event, stored_events

EVENTS = "/api/v1/events/"


def event(n=1, **fields):
    base = {
        "event_id": f"evt-{n}",
        "tenant": "agent-a",
        "meter": "call_minutes",
        "quantity": "1.5",
        "attributes": {"direction": "inbound"},
    }
    base.update(fields)
    return base


@pytest.fixture
def ingest_key(world):
    key_obj, key = ApiKey.objects.create_key(name="a", tenant=world.reseller_a, scopes=["ingest"])
    return key


@pytest.fixture
def key_client(client):
    def with_key(key):
        client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
        return client

    return with_key


def post(client, body):
    return client.post(EVENTS, json.dumps(body), content_type="application/json")


def test_one_event_is_stored_exactly(world, ingest_key, key_client):
    at = (timezone.now() - timedelta(hours=1)).replace(microsecond=0)
    body = event(quantity="0.1", timestamp=at.isoformat().replace("+00:00", "Z"))
    response = post(key_client(ingest_key), body)
    assert response.status_code == 201, response.content
    assert response.json() == {"accepted": 1, "duplicates": 0}
    stored = stored_event(event_id="evt-1")
    assert stored.tenant_id == world.agent_a.pk
    assert stored.quantity == Decimal("0.1")
    assert stored.occurred_at == at
    assert stored.source == "api"
    assert stored.dimension == "inbound"
    assert stored.attributes == {"direction": "inbound"}


def test_batch_and_duplicates_are_acknowledged_not_counted_twice(world, ingest_key, key_client):
    client = key_client(ingest_key)
    batch = {"events": [event(i, quantity=i) for i in range(1, 6)]}
    assert post(client, batch).json() == {"accepted": 5, "duplicates": 0}
    batch["events"].append(event(6))
    assert post(client, batch).json() == {"accepted": 1, "duplicates": 5}
    assert len(stored_events()) == 6
    same_id_twice = {"events": [event(7), event(7)]}
    assert post(client, same_id_twice).json() == {"accepted": 1, "duplicates": 1}


def test_tenant_by_external_id_and_number_quantities(world, ingest_key, key_client):
    body = event(tenant="EXT-ORG-A", quantity=2.25, meter="emails", attributes={})
    assert post(key_client(ingest_key), body).status_code == 201
    stored = stored_event()
    assert stored.tenant_id == world.org_a.pk and stored.quantity == Decimal("2.25")


BAD_EVENTS = [
    ({"quantity": "NaN"}, "quantity"),
    ({"quantity": "Infinity"}, "quantity"),
    ({"quantity": "-Infinity"}, "quantity"),
    ({"quantity": "1e400"}, "quantity"),
    ({"quantity": "123456789012345"}, "quantity"),
    ({"quantity": "0.0000001"}, "quantity"),
    ({"quantity": "ten"}, "quantity"),
    ({"quantity": None}, "quantity"),
    ({"quantity": True}, "quantity"),
    ({"quantity": [1]}, "quantity"),
    ({"meter": "no_such_meter"}, "meter"),
    ({"tenant": "no-such-tenant"}, "tenant"),
    ({"tenant": "agent-b"}, "tenant"),
    ({"tenant": 42}, "tenant"),
    ({"event_id": ""}, "event_id"),
    ({"event_id": "x" * 129}, "event_id"),
    ({"event_id": 12}, "event_id"),
    ({"timestamp": "2026-11-25"}, "timestamp"),
    ({"timestamp": "2026-11-25T08:00:00"}, "timestamp"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"timestamp": "2026-13-45T08:00:00Z"}, "timestamp"),
    ({"source": "robot"}, "source"),
    ({"attributes": ["a"]}, "attributes"),
    ({"attributes": {"direction": 5}}, "attributes.direction"),
    ({"attributes": {"k": "v" * 257}}, "attributes.k"),
    ({"attributes": {f"k{i}": "v" for i in range(17)}}, "attributes"),
    ({"surprise": 1}, "surprise"),
    ({"meter": "active_users", "attributes": {}}, "attributes.user_id"),
]


@pytest.mark.parametrize("change, field", BAD_EVENTS)
def test_invalid_event_rejects_the_whole_batch(world, ingest_key, key_client, change, field):
    batch = {"events": [event(1), event(2, **change), event(3)]}
    response = post(key_client(ingest_key), batch)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert {"index": 1, "field": field} == {k: errors[0][k] for k in ("index", "field")}
    assert errors[0]["message"]
    assert len(stored_events()) == 0


def test_timestamps_in_the_future_or_too_old_are_rejected(world, ingest_key, key_client):
    now = timezone.now()
    client = key_client(ingest_key)
    for at in [now + timedelta(minutes=6), now - timedelta(days=36)]:
        response = post(client, event(timestamp=at.isoformat()))
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "timestamp"
    ok = post(client, event(timestamp=(now + timedelta(minutes=4)).isoformat()))
    assert ok.status_code == 201
    old = post(client, event(2, timestamp=(now - timedelta(days=34)).isoformat()))
    assert old.status_code == 201


def test_backdate_window_is_a_setting(world, ingest_key, key_client, settings):
    settings.USAGE_BACKDATE_DAYS = 2
    at = (timezone.now() - timedelta(days=3)).isoformat()
    assert post(key_client(ingest_key), event(timestamp=at)).status_code == 400


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[1, 2, 3]",
        '"text"',
        "42",
        '{"events": "nope"}',
        '{"events": []}',
        '{"events": [1, 2]}',
        '{"events": [], "extra": 1}',
        '{"event_id": "a", "tenant": "agent-a", "meter": "emails", "quantity": NaN}',
    ],
)
def test_malformed_bodies_are_4xx_json_and_store_nothing(world, ingest_key, key_client, raw):
    response = key_client(ingest_key).post(EVENTS, raw, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body.get("errors") or body.get("detail")
    assert len(stored_events()) == 0


def test_batch_over_ten_thousand_is_rejected(world, ingest_key, key_client):
    batch = {"events": [event(i) for i in range(10_001)]}
    response = post(key_client(ingest_key), batch)
    assert response.status_code == 400
    assert "10,000" in response.json()["errors"][0]["message"]
    assert len(stored_events()) == 0


def test_ten_thousand_events_are_accepted(world, ingest_key, key_client):
    batch = {"events": [event(i, quantity="0.5") for i in range(10_000)]}
    response = post(key_client(ingest_key), batch)
    assert response.json() == {"accepted": 10_000, "duplicates": 0}
    assert len(stored_events()) == 10_000


def test_oversize_body_is_413_json(world, ingest_key, key_client):
    padding = "x" * (MAX_BODY_BYTES + 10)
    raw = json.dumps({"events": [event(1, attributes={"pad": padding})]})
    response = key_client(ingest_key).post(EVENTS, raw, content_type="application/json")
    assert response.status_code == 413
    assert "MB" in response.json()["detail"]
    assert len(stored_events()) == 0


def test_wrong_content_type_is_415(world, ingest_key, key_client):
    response = key_client(ingest_key).post(EVENTS, {"event_id": "x"})
    assert response.status_code == 415
    assert response.json()["detail"]


def test_negative_correction_rules(world, users, api):
    operator = api(users["superuser"])
    correction = event(1, quantity="-2", attributes={"direction": "inbound", "reason": "dup call"})
    # Managers and viewers of the tenant cannot lower its (and its sellers') bills.
    for who in ("viewer_a", "manager_a", "partner"):
        response = api(users[who]).post(EVENTS, correction, format="json")
        assert response.status_code == 400, who
    no_reason = event(2, quantity="-2")
    response = operator.post(EVENTS, no_reason, format="json")
    assert response.json()["errors"][0]["field"] == "attributes.reason"
    gauge = event(3, meter="storage_units", quantity="-1", attributes={"reason": "x"})
    response = operator.post(EVENTS, gauge, format="json")
    assert response.json()["errors"][0]["field"] == "quantity"
    assert operator.post(EVENTS, correction, format="json").status_code == 201
    assert stored_event().quantity == Decimal("-2")


def test_negative_correction_from_an_api_key_needs_the_correct_scope(world, ingest_key, key_client):
    correction = event(1, quantity="-1", attributes={"reason": "refund"})
    response = post(key_client(ingest_key), correction)
    assert response.status_code == 400
    assert len(stored_events()) == 0
    _, corrector = ApiKey.objects.create_key(
        name="c", tenant=world.reseller_a, scopes=["ingest", "correct"]
    )
    assert post(key_client(corrector), correction).status_code == 201
    assert stored_event().quantity == Decimal("-1")


def test_key_without_ingest_scope_is_403(world, key_client):
    _, key = ApiKey.objects.create_key(name="r", tenant=world.reseller_a, scopes=["read"])
    response = post(key_client(key), event())
    assert response.status_code == 403
    assert len(stored_events()) == 0


def test_bad_revoked_or_expired_keys_are_401(world, key_client):
    revoked, key1 = ApiKey.objects.create_key(
        name="old", tenant=world.reseller_a, scopes=["ingest"], revoked=True
    )
    expired, key2 = ApiKey.objects.create_key(
        name="exp",
        tenant=world.reseller_a,
        scopes=["ingest"],
        expiry_date=timezone.now() - timedelta(days=1),
    )
    for key in ["garbage.key", key1, key2]:
        response = post(key_client(key), event())
        assert response.status_code == 401
        assert response.json()["detail"]


def test_key_cannot_ingest_outside_its_subtree(world, key_client):
    _, key = ApiKey.objects.create_key(name="b", tenant=world.reseller_b, scopes=["ingest"])
    response = post(key_client(key), event(tenant="agent-a"))
    assert response.status_code == 400
    assert response.json()["errors"][0]["message"] == "Unknown tenant 'agent-a'."


def test_anonymous_is_refused(db, client):
    assert post(client, event()).status_code in (401, 403)
