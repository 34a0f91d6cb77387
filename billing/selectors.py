"""Reads of billing's stored rules and results: which plans a user may sell,
which subscriptions cover a month, the stored statements, a tenant's usage of
its plan's meters. Writes live in billing.plans and billing.statements."""

from datetime import date

from accounts.models import Tenant
from accounts.services import user_can_manage
from billing.models import Plan, Statement, Subscription
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
