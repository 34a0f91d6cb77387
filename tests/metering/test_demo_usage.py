from collections import Counter
from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from accounts.models import Tenant
from metering.demo import DemoUsage
from metering.ingestion import validate_events
from metering.models import UsageEvent
from tests.stored import relational_only, stored_events


def generate(world, days=5, now=None):
    agents = {world.org_a.pk: [world.agent_a]}
    now = now or timezone.now()
    return list(DemoUsage(now.date(), days=days, now=now).events([world.org_a], agents))


def as_payload(event):
    return {
        "event_id": event.event_id,
        "tenant": event.tenant.slug,
        "meter": event.meter.code,
        "quantity": str(event.quantity),
        "timestamp": event.occurred_at.isoformat(),
        "source": event.source,
        "attributes": event.attributes,
    }


def test_demo_usage_is_deterministic(world):
    now = timezone.now()
    first = [(e.event_id, e.quantity, e.occurred_at) for e in generate(world, now=now)]
    second = [(e.event_id, e.quantity, e.occurred_at) for e in generate(world, now=now)]
    assert first == second
    assert max(at for _, _, at in first) <= now


def test_demo_events_pass_the_ingestion_rules(world, users):
    events = generate(world)
    rows, errors = validate_events([as_payload(e) for e in events], principal=users["superuser"])
    assert errors == []
    assert len(rows) == len(events)


def test_demo_usage_is_believable(world):
    events = generate(world, days=14)
    calls = [e for e in events if e.meter.code == "call_minutes"]
    business = sum(1 for e in calls if 7 <= e.occurred_at.hour < 19)
    assert business / len(calls) > 0.75
    storage = Counter(
        (e.occurred_at.date(), e.dimension) for e in events if e.meter.code == "storage_units"
    )
    assert set(storage.values()) == {1}  # one gauge reading per tier per day
    assert {tier for _, tier in storage} == {"hot", "cool", "archive"}
    licenses = [e for e in events if e.meter.code == "licenses"]
    assert {e.tenant for e in licenses} == {world.org_a}
    assert {e.dimension for e in licenses} == {"administrator", "power_plus", "viewer"}
    categories = {e.meter.category for e in events}
    assert categories == {
        "processing",
        "storage",
        "bandwidth",
        "licenses",
        "portals",
        "communications",
    }


def test_seed_demo_loads_usage_once(db, settings, capsys):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command("seed_demo", "--no-progress", "--days", "2")
    events = stored_events()
    assert len(events) > 20_000
    kinds = dict(Tenant.objects.values_list("pk", "kind"))
    assert {kinds[e.tenant_id] for e in events} == {Tenant.Kind.AGENT, Tenant.Kind.ORGANIZATION}
    oldest = min(e.occurred_at for e in events)
    assert oldest.date() >= timezone.now().date() - timedelta(days=1)
    call_command("seed_demo", "--no-progress", "--days", "2")
    assert "Demo usage already loaded." in capsys.readouterr().out
    assert len(stored_events()) == len(events)


@relational_only("a row of the relational event table")
def test_events_are_immutable(world, users):
    from metering.ingestion import ingest_events

    ingest_events(
        [{"event_id": "x", "tenant": "agent-a", "meter": "emails", "quantity": 1}],
        principal=users["superuser"],
    )
    event = UsageEvent.objects.get()
    event.quantity = 5
    try:
        event.save()
    except Exception as error:  # noqa: BLE001
        assert "immutable" in str(error)
    else:
        raise AssertionError("saving a stored event must fail")
    event.refresh_from_db()
    assert event.quantity == 1


def test_the_demo_load_shows_its_total_and_the_same_events_as_one_stream(world):
    import io

    from tqdm import tqdm

    from metering.demo import load_demo_usage

    today = timezone.now().date()
    organizations = list(Tenant.objects.filter(kind="organization").order_by("slug"))
    agents = {}
    for agent in Tenant.objects.filter(kind="agent").order_by("slug"):
        agents.setdefault(agent.parent_id, []).append(agent)
    now = timezone.now()
    one_stream = [
        (e.event_id, e.quantity)
        for e in DemoUsage(today, days=2, now=now).events(organizations, agents)
    ]
    out = io.StringIO()
    with tqdm(file=out, mininterval=0) as bar:
        stored = load_demo_usage(today, days=2, progress=bar)
        assert (bar.total, bar.n) == (len(organizations), len(organizations))
    assert f"{stored:,} events stored" in out.getvalue()
    loaded = {(e.event_id, e.quantity) for e in stored_events()}
    # Drawn organization by organization, the events are those of one stream (only an
    # event falling in the seconds between the two draws could differ).
    assert set(one_stream) <= loaded
    assert len(loaded) == stored and stored - len(one_stream) <= 5
