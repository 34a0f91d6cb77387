"""May a tenant keep using a meter? Answered from real-time usage (history + tail).

Every subscription on the way up — the tenant's own, its organization's, its
reseller's wholesale one — can cap the meter; the answer is the first that
blocks, else the nearest subscription that has the meter. Only `block` items
ever refuse; ingestion records every event whatever the answer.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils import timezone

from accounts.models import Tenant
from billing.models import PlanItem, Subscription
from billing.money import ZERO
from billing.periods import month_of, segment_of
from billing.plan_rules import limit_reached
from billing.selectors import usage_by_meter
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


def entitlement(tenant: Tenant, meter: Meter, today: date | None = None) -> Entitlement:
    today = today or timezone.now().date()
    answers = [
        item_entitlement(tenant, meter, subscription, item, today)
        for subscription, item in capping_items(tenant, meter, today)
    ]
    refused = [answer for answer in answers if not answer.allowed]
    if refused:
        return refused[0]
    if answers:
        return answers[0]
    period = month_of(today)
    used = usage_by_meter(tenant, period, today, [meter.code]).get(meter.pk, ZERO)
    return Entitlement(tenant, meter, True, used, None, None, None)


def capping_items(tenant: Tenant, meter: Meter, today: date):
    """(subscription, item) pairs for the meter, nearest tenant first."""
    lineage = list(tenant.get_ancestors(include_self=True, ascending=True))
    subscriptions = (
        Subscription.objects.in_force(today, today)
        .filter(tenant__in=lineage)
        .select_related("plan", "tenant")
    )
    depth = {t.pk: position for position, t in enumerate(lineage)}
    items = {
        item.plan_id: item
        for item in PlanItem.objects.filter(
            plan__in=[s.plan_id for s in subscriptions], meter=meter
        )
    }
    pairs = [(s, items[s.plan_id]) for s in subscriptions if s.plan_id in items]
    return sorted(pairs, key=lambda pair: depth[pair[0].tenant_id])


def item_entitlement(tenant, meter, subscription, item: PlanItem, today: date) -> Entitlement:
    start, _ = segment_of(subscription, month_of(today))
    used = usage_by_meter(subscription.tenant, start, today, [meter.code]).get(meter.pk, ZERO)
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
    )
