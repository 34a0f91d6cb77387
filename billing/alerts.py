"""Usage alerts: a subscribed plan item's threshold crossed in a month, raised once.

Checked after each rollup for every subscription, and on ingestion for items
with the `block` policy (their limit is what the integration must hear about at
once). The unique key (subscription, item, threshold, period) makes raising an
alert idempotent, also when two processes check at the same moment.
"""

import logging
from datetime import date

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.mail import branded_mail, managers_by_brand
from accounts.models import Tenant
from billing.failures import FailureLog, guarded
from billing.models import PlanItem, Subscription, TenantFailure, UsageAlert
from billing.periods import month_of, segment_of
from billing.plan_rules import limit_reached, threshold_crossed
from billing.selectors import subscriptions_in, usage_by_item
from billing.signals import alert_raised, entitlement_blocked
from billing.statements import periods_to_refresh
from utilities.text import header_text

logger = logging.getLogger(__name__)


def check_alerts(
    *, today: date | None = None, periods=None, subscriptions=None, meter_ids=None, policy=None
) -> list[UsageAlert]:
    """Raise the alerts now due; returns the new ones.

    An alert belongs to the month of the usage: by default every month whose
    statements are still open is checked (the current one, and a closed one until
    it is finalized), so late usage of last month raises last month's alert.
    """
    today = today or timezone.now().date()
    periods = periods_to_refresh(today) if periods is None else periods
    raised, failures = [], FailureLog(TenantFailure.Job.ALERTS)
    for period in periods:
        in_period = subscriptions
        if in_period is None:
            in_period = subscriptions_in(period).filter(starts_on__lte=today)
        for subscription in in_period:
            with failures.guard(subscription.tenant):
                items = alerting_items(subscription, meter_ids, policy)
                if items:
                    raised += check_subscription(subscription, items, period)
    return raised


def alerting_items(subscription: Subscription, meter_ids=None, policy=None) -> list[PlanItem]:
    items = subscription.plan.items.select_related("meter").exclude(thresholds=[])
    if meter_ids is not None:
        items = items.filter(meter_id__in=meter_ids)
    if policy is not None:
        items = items.filter(overage_policy=policy)
    return [item for item in items if item.alert_base > 0]


def check_subscription(subscription, items: list[PlanItem], period: date) -> list[UsageAlert]:
    done = set(
        UsageAlert.objects.filter(subscription=subscription, period=period).values_list(
            "plan_item_id", "percent"
        )
    )
    # Items whose every threshold is already raised this month need no usage query
    # (the common case on ingestion once a customer is over its limit).
    items = [i for i in items if any((i.pk, t) not in done for t in i.thresholds)]
    if not items:
        return []
    start, end = segment_of(subscription, period)
    used = usage_by_item(subscription.tenant, start, end, items)
    raised = []
    for item in items:
        quantity = used[item.pk]
        for threshold in item.thresholds:
            crossed = threshold_crossed(quantity, item.alert_base, threshold)
            if crossed and (item.pk, threshold) not in done:
                alert = raise_alert(subscription, item, threshold, period, quantity)
                if alert is not None:
                    raised.append(alert)
    return raised


def raise_alert(subscription, item, threshold, period, usage) -> UsageAlert | None:
    """Store the alert and mail it after commit; None when another process was first."""
    try:
        with transaction.atomic():
            alert = UsageAlert.objects.create(
                tenant=subscription.tenant,
                subscription=subscription,
                plan_item=item,
                percent=threshold,
                period=period,
                usage=usage,
                base=item.alert_base,
            )
    except IntegrityError:
        return None
    transaction.on_commit(lambda: notify(alert))
    transaction.on_commit(lambda: announce(alert))
    return alert


def announce(alert: UsageAlert) -> None:
    alert_raised.send(sender=UsageAlert, alert=alert)
    item = alert.plan_item
    if item.overage_policy == PlanItem.OveragePolicy.BLOCK and limit_reached_by(alert):
        entitlement_blocked.send(sender=UsageAlert, alert=alert)


def limit_reached_by(alert: UsageAlert) -> bool:
    """Whether this alert is the first of its item and period to find the limit reached
    (used ≥ limit): thresholds past 100 % raise alerts of their own, not a new block."""
    limit = alert.plan_item.limit
    if limit is None or not limit_reached(alert.usage, limit):
        return False
    earlier = UsageAlert.objects.filter(
        subscription_id=alert.subscription_id,
        plan_item_id=alert.plan_item_id,
        period=alert.period,
        usage__gte=limit,
        pk__lt=alert.pk,
    )
    return not earlier.exists()


def alert_tenants(tenant: Tenant) -> list[Tenant]:
    """Whose managers hear of the tenant's alerts: the tenant's and its reseller's."""
    reseller = (
        tenant
        if tenant.kind == Tenant.Kind.RESELLER
        else tenant.get_ancestors().filter(kind=Tenant.Kind.RESELLER).last()
    )
    return [tenant] if reseller is None or reseller == tenant else [tenant, reseller]


def alert_message(alert: UsageAlert) -> tuple[str, str]:
    item, tenant = alert.plan_item, alert.tenant
    base = "limit" if item.limit is not None else "included quantity"
    subject = header_text(f"{tenant.name}: {item.meter.name} at {alert.percent}% of the {base}")
    body = (
        f"{tenant.name} ({tenant.slug}) has used {alert.usage.normalize():f} {item.meter.unit} "
        f"of {item.meter.name} in {alert.period:%B %Y}, crossing {alert.percent}% of the "
        f"{base} ({alert.base.normalize():f}) of plan {item.plan.code}.\n"
        f"Overage policy: {item.get_overage_policy_display()}.\n"
    )
    return subject, body


def notify(alert: UsageAlert) -> None:
    """Mail the alert; a failure is the tenant's alone and is recorded (the alert
    itself stays recorded, listed in the admin and the API, without a mail)."""
    guarded(TenantFailure.Job.MAIL, alert.tenant, lambda: mail_alert(alert))


def mail_alert(alert: UsageAlert) -> None:
    """One mail per brand the recipients' tenants show (the tenant's managers and its
    reseller's normally share one)."""
    groups = managers_by_brand(alert_tenants(alert.tenant))
    if not groups:
        return
    subject, body = alert_message(alert)
    for brand, recipients in groups:
        branded_mail(brand, subject=subject, body=body, to=recipients).send()
    notified = sorted(email for _, recipients in groups for email in recipients)
    UsageAlert.objects.filter(pk=alert.pk).update(notified_to=", ".join(notified))


def check_block_limits(tenant_ids, meter_ids) -> list[UsageAlert]:
    """On ingestion: alerts of `block` items of the subscriptions above these tenants."""
    today = timezone.now().date()
    candidates = (
        subscriptions_in(month_of(today))
        .filter(
            starts_on__lte=today,
            plan__items__overage_policy=PlanItem.OveragePolicy.BLOCK,
            plan__items__meter_id__in=meter_ids,
        )
        .distinct()
    )
    if not candidates:
        return []
    positions = list(Tenant.objects.filter(pk__in=tenant_ids).values_list("tree_id", "lft"))
    concerned = [s for s in candidates if covers(s.tenant, positions)]
    return check_alerts(
        today=today,
        periods=[month_of(today)],
        subscriptions=concerned,
        meter_ids=meter_ids,
        policy=PlanItem.OveragePolicy.BLOCK,
    )


def covers(tenant: Tenant, positions) -> bool:
    """Whether any of the (tree_id, lft) positions lies in `tenant`'s subtree."""
    return any(tenant.holds_position(tree_id, lft) for tree_id, lft in positions)
