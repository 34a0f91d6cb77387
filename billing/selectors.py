"""Reads of billing's stored rules and results: which plans a user may sell,
which subscriptions cover a month, the stored statements, a tenant's usage of
its plan's meters. Writes live in billing.plans and billing.statements."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from accounts.models import Tenant
from accounts.services import user_can_manage
from billing.models import Plan, PlanItem, Statement, Subscription
from billing.money import ZERO
from billing.periods import month_end
from billing.usage import UsageFilters, usage_summary


def can_sell(user, plan: Plan) -> bool:
    """Subscriptions to a plan are made by whoever manages its owner (platform: superusers)."""
    return user_can_manage(user, plan.owner)


def usable_plans(user):
    """The plans a user may subscribe customers to."""
    plans = Plan.objects.filter(is_active=True)
    if user.is_superuser:
        return plans
    return plans.filter(owner__in=Tenant.objects.managed_by(user))


def subscriptions_in(period: date):
    return (
        Subscription.objects.in_force(period, month_end(period))
        .select_related("plan", "tenant")
        .order_by("tenant_id", "starts_on")
    )


def subscription_covering(tenant: Tenant, start: date, end: date) -> Subscription | None:
    """The tenant's subscription in force at the end of the days start..end (the
    latest one that started by then and had not ended before `start`)."""
    return (
        Subscription.objects.in_force(start, end)
        .filter(tenant=tenant)
        .select_related("plan")
        .order_by("-starts_on")
        .first()
    )


def usage_by_meter(tenant: Tenant, start: date, end: date, meter_codes: list[str]) -> dict:
    summary = usage_summary(tenant, start, end, "meter", UsageFilters(meters=tuple(meter_codes)))
    return {row.meter.pk: row.quantity for row in summary.rows}


def usage_by_item(tenant: Tenant, start: date, end: date, items) -> dict[int, Decimal]:
    """Each plan item's usage over the days, by item id: its meter's; for an item of
    one dimension value, that value's; for the rest item of a meter priced per
    value, every value no other item names (events without the attribute too)."""
    named = listed_dimensions(items)
    whole = [item.meter.code for item in items if item.meter_id not in named]
    by_meter = usage_by_meter(tenant, start, end, whole) if whole else {}
    by_dimension = {}
    if named:
        codes = tuple({item.meter.code for item in items if item.meter_id in named})
        summary = usage_summary(tenant, start, end, "dimension", UsageFilters(meters=codes))
        by_dimension = {(row.meter.pk, row.key): row.quantity for row in summary.rows}
    used = {}
    for item in items:
        if item.meter_id not in named:
            used[item.pk] = by_meter.get(item.meter_id, ZERO)
        elif item.dimension is not None:
            used[item.pk] = by_dimension.get((item.meter_id, item.dimension), ZERO)
        else:
            used[item.pk] = usage_of_the_rest(tenant, start, end, item.meter, named[item.meter_id])
    return used


def listed_dimensions(items) -> dict[int, list[str]]:
    """Meter id -> the dimension values its items name in these items' plans (the
    rest item of a meter prices every other value)."""
    named: dict[int, list[str]] = defaultdict(list)
    listed = PlanItem.objects.filter(
        plan_id__in={item.plan_id for item in items},
        meter_id__in={item.meter_id for item in items},
        dimension__isnull=False,
    )
    for meter_id, dimension in listed.values_list("meter_id", "dimension").distinct():
        named[meter_id].append(dimension)
    return named


def usage_of_the_rest(tenant, start, end, meter, listed: list[str]) -> Decimal:
    """A meter's usage over every dimension value but the listed ones (rule 3: a
    gauge's day is the sum over those values, its period the max or last day)."""
    filters = UsageFilters(meters=(meter.code,), exclude_dimensions=tuple(listed))
    rows = usage_summary(tenant, start, end, "meter", filters).rows
    return rows[0].quantity if rows else ZERO


def final_tenant_ids(period: date) -> set[int]:
    return set(
        Statement.objects.filter(period=period, status=Statement.Status.FINAL).values_list(
            "tenant_id", flat=True
        )
    )


def statement_totals(tenant_ids, period: date) -> dict[int, Statement]:
    """The stored statement of each of these tenants for `period`, by tenant id."""
    statements = Statement.objects.filter(tenant_id__in=list(tenant_ids), period=period)
    return {statement.tenant_id: statement for statement in statements}


@dataclass(frozen=True)
class StatementPricing:
    """The plans and plan items behind a statement's lines, as they stood when the
    statement was last rated (its `as_of`, read from the plans' history): a final
    statement keeps the prices it was rated with, whatever was edited since."""

    plans: dict[str, Plan]  # by code (a plan's code never changes)
    items: dict[tuple[str, int, str | None], PlanItem]  # by (plan code, meter id, dimension)

    def plan_label(self, code: str) -> str:
        plan = self.plans.get(code)
        return code if plan is None else f"{plan.name} ({code})"

    def item_of(self, line) -> PlanItem | None:
        return self.items.get((line.plan_code, line.meter_id, line.dimension))


def statement_pricing(statement: Statement) -> StatementPricing:
    """Rows without history at the statement's `as_of` (written before history was
    kept, or by a data migration) read as they are now."""
    codes = set(statement.lines.values_list("plan_code", flat=True))
    plans = {plan.pk: plan for plan in Plan.objects.filter(code__in=codes)}
    plans.update({p.pk: p for p in Plan.history.as_of(statement.as_of).filter(pk__in=list(plans))})
    items = [
        *PlanItem.objects.filter(plan_id__in=list(plans)),
        *PlanItem.history.as_of(statement.as_of).filter(plan_id__in=list(plans)),  # wins
    ]
    return StatementPricing(
        plans={plan.code: plan for plan in plans.values()},
        items={(plans[i.plan_id].code, i.meter_id, i.dimension): i for i in items},
    )
