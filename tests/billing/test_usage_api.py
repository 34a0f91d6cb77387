import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import ApiKey, PlatformPrincipal
from metering.ingestion import ingest_events
from tests.billing.conftest import rollup

USAGE = "/api/v1/usage/"


@pytest.fixture
def usage(world):
    now = timezone.now()
    events = []
    for n, (tenant, meter, qty, attrs) in enumerate(
        [
            ("agent-a", "call_minutes", "12.5", {"direction": "inbound"}),
            ("agent-a", "call_minutes", "2.25", {"direction": "outbound"}),
            ("org-a", "licenses", "7", {"license_type": "viewer"}),
            ("agent-b", "call_minutes", "99", {"direction": "inbound"}),
        ]
    ):
        events.append(
            {
                "event_id": f"u{n}",
                "tenant": tenant,
                "meter": meter,
                "quantity": qty,
                "timestamp": (now - timedelta(hours=1)).isoformat(),
                "attributes": attrs,
            }
        )
    ingest_events(events, principal=PlatformPrincipal())
    return now.date()


def test_summary_shape_and_numbers(usage, users, api):
    response = api(users["manager_a"]).get(
        USAGE, {"tenant": "reseller-a", "start": str(usage), "end": str(usage)}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tenant"] == "reseller-a" and body["start"] == body["end"] == str(usage)
    results = {r["meter"]: r for r in body["results"]}
    assert results["call_minutes"] == {
        "meter": "call_minutes",
        "category": "communications",
        "unit": "minutes",
        "quantity": "14.750000",
        "event_count": 2,
    }
    assert results["licenses"]["quantity"] == "7.000000"


def test_same_numbers_before_and_after_rollup(usage, users, api):
    client = api(users["partner"])
    params = {"tenant": "partner-p", "group_by": "dimension"}
    before = client.get(USAGE, params).json()["results"]
    rollup()
    after = client.get(USAGE, params).json()["results"]
    assert before == after and before


def test_group_by_child_lists_every_child_with_zeros(usage, users, api, world):
    from tests.factories import make_tenant

    make_tenant("organization", world.reseller_a, slug="quiet-org")
    body = api(users["manager_a"]).get(USAGE, {"tenant": "reseller-a", "group_by": "child"}).json()
    children = {(r["child"], r["meter"]): r["quantity"] for r in body["results"]}
    assert children[("org-a", "call_minutes")] == "14.750000"
    assert children[("quiet-org", "call_minutes")] == "0.000000"
    assert children[("quiet-org", "licenses")] == "0.000000"
    assert {r["child_kind"] for r in body["results"]} == {"organization"}


def test_csv_equals_json(usage, users, api):
    client = api(users["manager_a"])
    for group_by in ("meter", "day", "child", "source", "dimension"):
        params = {"tenant": "reseller-a", "group_by": group_by}
        json_rows = client.get(USAGE, params).json()["results"]
        response = client.get(USAGE, {**params, "format": "csv"})
        assert response["Content-Type"].startswith("text/csv")
        text = b"".join(response.streaming_content).decode()
        csv_rows = list(csv.DictReader(io.StringIO(text)))
        assert len(csv_rows) == len(json_rows)
        for c, j in zip(csv_rows, json_rows, strict=True):
            assert c["meter"] == j["meter"] and c["quantity"] == j["quantity"]
            assert int(c["event_count"]) == j["event_count"]
            if group_by != "meter":
                assert c[group_by] == str(j[group_by])


def test_filters_meter_category_source(usage, users, api):
    client = api(users["superuser"])
    body = client.get(USAGE, {"tenant": "partner-p", "category": "licenses"}).json()
    assert [r["meter"] for r in body["results"]] == ["licenses"]
    body = client.get(
        USAGE, {"tenant": "partner-p", "meter": "call_minutes", "group_by": "dimension"}
    ).json()
    assert {r["dimension"]: r["quantity"] for r in body["results"]} == {
        "inbound": "12.500000",
        "outbound": "2.250000",
    }
    assert client.get(USAGE, {"tenant": "partner-p", "source": "user"}).json()["results"] == []


@pytest.mark.parametrize(
    "params, field",
    [
        ({}, "tenant"),
        ({"tenant": "reseller-a", "start": "yesterday"}, "start"),
        ({"tenant": "reseller-a", "start": "2026-02-30"}, "start"),
        ({"tenant": "reseller-a", "start": "2026-05-02", "end": "2026-05-01"}, "end"),
        ({"tenant": "reseller-a", "start": "2020-01-01", "end": "2026-01-01"}, "end"),
        ({"tenant": "reseller-a", "group_by": "planet"}, "group_by"),
        ({"tenant": "reseller-a", "meter": "nope"}, "meter"),
        ({"tenant": "reseller-a", "source": "robot"}, "source"),
    ],
)
def test_bad_queries_are_400_with_the_field(usage, users, api, params, field):
    response = api(users["manager_a"]).get(USAGE, params)
    assert response.status_code == 400
    assert field in {e.get("field") for e in response.json()["errors"]}


@pytest.mark.parametrize("slug", ["reseller-b", "org-b", "agent-b", "partner-p", "missing"])
def test_other_resellers_usage_is_404(usage, users, api, slug):
    for fmt in ("json", "csv"):
        response = api(users["manager_a"]).get(USAGE, {"tenant": slug, "format": fmt})
        assert response.status_code == 404
        assert b"99" not in response.content


def test_read_key_gets_usage_of_its_subtree(usage, world, client):
    _, key = ApiKey.objects.create_key(name="bi", tenant=world.org_a, scopes=["read"])
    client.defaults["HTTP_AUTHORIZATION"] = f"Api-Key {key}"
    assert client.get(USAGE, {"tenant": "org-a"}).status_code == 200
    assert client.get(USAGE, {"tenant": "reseller-a"}).status_code == 404
