"""A summary's real-time tail (events past the last rollup) counts its own
subtree's events only, whichever tenants the tail holds, in either store."""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from accounts.models import PlatformPrincipal
from billing.usage import usage_summary
from metering.ingestion import ingest_events
from tests.billing.conftest import rollup
from tests.billing.oracle import summary_as_dict
from tests.factories import make_tenant


def send(now, *pairs):
    ingest_events(
        [
            {
                "event_id": f"e-{tenant.slug}-{quantity}",
                "tenant": tenant.slug,
                "meter": "call_minutes",
                "quantity": quantity,
                "timestamp": (now - timedelta(hours=1)).isoformat(),
                "attributes": {"direction": "inbound"},
            }
            for tenant, quantity in pairs
        ],
        principal=PlatformPrincipal(),
        now=now,
    )


def minutes(tenant, now, group_by="meter"):
    day = now.date()
    return summary_as_dict(usage_summary(tenant, day - timedelta(days=1), day, group_by))


def test_the_tail_counts_the_subtree_s_events_only(db):
    partner = make_tenant("partner")
    org = make_tenant("organization", partner)
    agent = make_tenant("agent", org)
    sibling = make_tenant("organization", partner)
    quiet = make_tenant("agent", sibling)
    stranger = make_tenant("partner")
    now = timezone.now()
    send(now, (agent, "2"), (sibling, "3"), (stranger, "5"))

    assert minutes(org, now) == {("call_minutes", None): (Decimal(2), 1)}
    assert minutes(partner, now) == {("call_minutes", None): (Decimal(5), 2)}
    assert minutes(partner, now, "child") == {
        ("call_minutes", org.slug): (Decimal(2), 1),
        ("call_minutes", sibling.slug): (Decimal(3), 1),
    }
    assert minutes(stranger, now) == {("call_minutes", None): (Decimal(5), 1)}
    assert minutes(quiet, now) == {}


def test_a_tail_of_other_tenants_leaves_the_rolled_up_figures(db):
    partner = make_tenant("partner")
    agent = make_tenant("agent", make_tenant("organization", partner))
    stranger = make_tenant("partner")
    now = timezone.now()
    send(now, (agent, "2"))
    rollup()
    send(now, (stranger, "5"))

    assert minutes(partner, now) == {("call_minutes", None): (Decimal(2), 1)}
    assert minutes(stranger, now) == {("call_minutes", None): (Decimal(5), 1)}
