"""For random trees and events, usage_summary equals a brute-force computation at every
tenant and for every grouping: before a rollup, after it, with late events and moves."""

from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import PlatformPrincipal, Tenant
from billing.models import DailyUsage
from billing.usage import GROUP_BYS, UsageFilters, usage_summary
from billing.usage.compaction import run_compaction
from metering.ingestion import ingest_events
from tests.billing.conftest import billing_table, rollup
from tests.billing.oracle import brute_force, summary_as_dict
from tests.conftest import clear_event_store
from tests.factories import make_tenant

METERS = {
    "call_minutes": ("direction", ["inbound", "outbound"]),
    "chat_sessions": ("channel", ["web", "sms"]),
    "storage_units": ("tier", ["hot", "cool"]),
    "queue_depth": ("queue", ["a", "b"]),
    "active_users": (None, []),
}

quantities = st.decimals(min_value=Decimal("0"), max_value=Decimal("500"), places=3)
event_specs = st.lists(
    st.tuples(
        st.integers(0, 20),  # tenant index (modulo the tree size)
        st.sampled_from(sorted(METERS)),
        st.integers(0, 5),  # days back
        st.integers(0, 23),  # hour
        quantities,
        st.sampled_from(["api", "user", "service"]),
        st.integers(0, 1),  # dimension choice
        st.integers(0, 3),  # user id
    ),
    min_size=1,
    max_size=40,
)
tree_shapes = st.lists(st.lists(st.integers(0, 2), min_size=0, max_size=2), min_size=1, max_size=3)


def build_tree(shape):
    """Resellers (the first under a partner) with organizations holding N agents each."""
    partner = make_tenant("partner")
    tenants = [partner]
    for r, orgs in enumerate(shape):
        reseller = make_tenant("reseller", partner if r == 0 else None)
        tenants.append(reseller)
        for agents in orgs:
            org = make_tenant("organization", reseller)
            tenants.append(org)
            tenants += [make_tenant("agent", org) for _ in range(agents)]
    return tenants


def send(tenants, specs, now, tag):
    events = []
    for n, (t, code, days, hour, qty, source, dim, user) in enumerate(specs):
        key, values = METERS[code]
        attributes = {key: values[dim]} if key else {"user_id": f"u{user}"}
        at = now - timedelta(days=days, hours=hour)
        events.append(
            {
                "event_id": f"{tag}-{n}",
                "tenant": tenants[t % len(tenants)].slug,
                "meter": code,
                "quantity": str(qty),
                "timestamp": at.isoformat(),
                "source": source,
                "attributes": attributes,
            }
        )
    ingest_events(events, principal=PlatformPrincipal(), now=now)


def assert_agrees(tenants, today, start_back=6, end_back=0):
    start, end = today - timedelta(days=start_back), today - timedelta(days=end_back)
    for tenant in tenants:
        tenant = Tenant.objects.get(pk=tenant.pk)
        for group_by in GROUP_BYS:
            got = summary_as_dict(usage_summary(tenant, start, end, group_by))
            want = brute_force(tenant, start, end, group_by)
            assert got == want, (tenant.slug, group_by)
    tenant = Tenant.objects.get(pk=tenants[0].pk)  # its bounds change when others move
    got = summary_as_dict(usage_summary(tenant, start, end, "meter", UsageFilters(source="api")))
    assert got == brute_force(tenant, start, end, "meter", source="api")


# Derandomized: the same examples on every run, so CI is reproducible; widen
# max_examples (or drop derandomize) locally to explore further.
@settings(
    max_examples=12,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    shape=tree_shapes,
    first=event_specs,
    late=event_specs,
    range_back=st.tuples(st.integers(0, 6), st.integers(0, 6)),
    move_pick=st.integers(0, 50),
)
def test_usage_summary_matches_brute_force(latest_meter, shape, first, late, range_back, move_pick):
    clear_event_store()
    with transaction.atomic():
        now = timezone.now()
        today = now.date()
        tenants = build_tree(shape)
        send(tenants, first, now, "first")
        assert_agrees(tenants, today)  # nothing rolled up: all raw
        rollup()
        assert_agrees(tenants, today)  # all from the billing table
        send(tenants, late, now, "late")
        start_back, end_back = max(range_back), min(range_back)
        assert_agrees(tenants, today, start_back, end_back)  # table + late tail
        movable = [t for t in tenants if t.kind in ("organization", "agent")]
        if movable:
            moved = Tenant.objects.get(pk=movable[move_pick % len(movable)].pk)
            targets = Tenant.objects.filter(
                kind="reseller" if moved.kind == "organization" else "organization"
            ).exclude(pk=moved.parent_id)
            if targets.exists():
                moved.parent = targets[move_pick % targets.count()]
                moved.save()
                assert_agrees(tenants, today)  # ancestors' history shifted
        rollup()
        assert_agrees(tenants, today)
        # Summable usage streaming in: a compaction adds the tail to the stored days.
        summable = [spec for spec in late if spec[1] in ("call_minutes", "chat_sessions")]
        if summable:
            send(tenants, summable, now, "stream")
        run_compaction()
        assert_agrees(tenants, today)
        compacted = billing_table()
        rollup(days=sorted(DailyUsage.objects.values_list("day", flat=True).distinct()))
        assert billing_table() == compacted  # what a full recomputation gives
        transaction.set_rollback(True)
