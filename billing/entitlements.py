"""May a tenant keep using a meter? Answered from real-time usage (history + tail).

Every subscription on the way up — the tenant's own, its organization's, its
reseller's wholesale one — can cap the meter; the answer is the first that
blocks, else the nearest subscription that has the meter. Only `block` items
ever refuse; ingestion records every event whatever the answer.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Q
from django.utils import timezone

from accounts.models import Tenant
from billing.models import PlanItem, Subscription
from billing.money import ZERO
from billing.periods import month_of, segment_of
from billing.plan_rules import limit_reached
from billing.selectors import usage_by_item
from billing.usage import UsageFilters, usage_summary
from metering.models import Meter


@dataclass
class Entitlement:
    tenant: Tenant
    meter: Meter
    allowed: bool
    used: Decimal
    limit: Decimal | None
    remaining: Decimal | None
    policy: str | None
    subscription: Subscription | None = None
    dimension: str | None = None


def entitlement(
    tenant: Tenant, meter: Meter, today: date | None = None, dimension: str = ""
) -> Entitlement:
    """May `tenant` record more usage of `meter` (of this dimension value: "" for
    events without the attribute) now? The plan item that would price such an
    event answers, on the tenant's own subscription and every one above it."""
    today = today or timezone.now().date()
    answers = [
        item_entitlement(tenant, meter, subscription, item, today)
        for subscription, item in capping_items(tenant, meter, today, dimension)
    ]
    refused = [answer for answer in answers if not answer.allowed]
    if refused:
        return refused[0]
    if answers:
        return answers[0]
    period = month_of(today)
    filters = UsageFilters(meters=(meter.code,), dimension=dimension or None)
    rows = usage_summary(tenant, period, today, "meter", filters).rows
    used = rows[0].quantity if rows else ZERO
    return Entitlement(tenant, meter, True, used, None, None, None, dimension=dimension or None)


def capping_items(tenant: Tenant, meter: Meter, today: date, dimension: str = ""):
    """(subscription, item) pairs for the meter and dimension, nearest tenant first:
    in each plan the item naming the dimension, else the meter's item for the rest."""
    lineage = list(tenant.get_ancestors(include_self=True, ascending=True))
    subscriptions = (
        Subscription.objects.in_force(today, today)
        .filter(tenant__in=lineage)
        .select_related("plan", "tenant")
    )
    depth = {t.pk: position for position, t in enumerate(lineage)}
    items = {}
    candidates = PlanItem.objects.filter(
        plan__in=[s.plan_id for s in subscriptions], meter=meter
    ).filter(Q(dimension__isnull=True) | Q(dimension=dimension))
    for item in candidates:
        # The item naming the dimension wins over the plan's item for the rest.
        if item.dimension is not None or item.plan_id not in items:
            items[item.plan_id] = item
    pairs = [(s, items[s.plan_id]) for s in subscriptions if s.plan_id in items]
    return sorted(pairs, key=lambda pair: depth[pair[0].tenant_id])


def item_entitlement(tenant, meter, subscription, item: PlanItem, today: date) -> Entitlement:
    start, _ = segment_of(subscription, month_of(today))
    used = usage_by_item(subscription.tenant, start, today, [item])[item.pk]
    limit = item.limit
    remaining = None if limit is None else max(limit - used, ZERO)
    blocking = item.overage_policy == PlanItem.OveragePolicy.BLOCK
    blocked = blocking and limit_reached(used, limit)
    return Entitlement(
        tenant=tenant,
        meter=meter,
        allowed=not blocked,
        used=used,
        limit=limit,
        remaining=remaining,
        policy=item.overage_policy,
        subscription=subscription,
        dimension=item.dimension,
    )
