"""Services that write plans and subscriptions: what takes more than one model
save (a plan change mid-period, a copied plan, a plan with its items). Their
validation is billing.plan_rules, reached through the models' full_clean()."""

from datetime import date, timedelta

from django.db import transaction

from accounts.models import Tenant
from billing.models import Plan, PlanItem, Subscription


@transaction.atomic
def subscribe(*, tenant: Tenant, plan: Plan, starts_on: date, ends_on: date | None = None):
    """Put `tenant` on `plan` from `starts_on`. An open subscription that started
    earlier is ended the day before: a plan change mid-period, prorated by day."""
    current = (
        Subscription.objects.select_for_update()
        .filter(tenant=tenant, ends_on__isnull=True, starts_on__lt=starts_on)
        .first()
    )
    if current is not None:
        current.ends_on = starts_on - timedelta(days=1)
        current.save(update_fields=["ends_on"])
    subscription = Subscription(tenant=tenant, plan=plan, starts_on=starts_on, ends_on=ends_on)
    subscription.full_clean()
    subscription.save()
    return subscription


@transaction.atomic
def duplicate_plan(plan: Plan, *, customer: Tenant, code: str, name: str = "") -> Plan:
    """A copy of `plan` and its items, usable only by `customer` (a custom deal)."""
    copy = Plan(
        code=code,
        name=name or f"{plan.name} — {customer.name}",
        owner=plan.owner,
        customer=customer,
        currency=plan.currency,
        base_fee=plan.base_fee,
        minimum_commitment=plan.minimum_commitment,
        billing_period=plan.billing_period,
        description=plan.description,
    )
    copy.full_clean()
    copy.save()
    for item in plan.items.all():
        item.pk = None
        item.plan = copy
        item.save()
    return copy


ITEM_FIELDS = (
    "charge_model",
    "package_size",
    "included_quantity",
    "limit",
    "overage_policy",
    "unit_price",
    "tiers",
    "thresholds",
)


@transaction.atomic
def save_plan(*, plan: Plan, items: list[dict] | None) -> Plan:
    """Save a plan and, when `items` is given, make its items exactly these.

    Items are matched by meter and dimension, so an item that stays keeps its
    history and its alerts; items no longer listed are removed.
    """
    plan.full_clean()
    plan.save()
    if items is None:
        return plan
    current = {(item.meter_id, item.dimension): item for item in plan.items.all()}
    keep = []
    for data in items:
        meter, dimension = data["meter"], data.get("dimension")
        item = current.get((meter.pk, dimension)) or PlanItem(
            plan=plan, meter=meter, dimension=dimension
        )
        for name in ITEM_FIELDS:
            if name in data:
                setattr(item, name, data[name])
        item.full_clean()
        item.save()
        keep.append(item.pk)
    for item in plan.items.exclude(pk__in=keep):
        item.delete()
    return plan
