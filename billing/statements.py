"""Statements: a tenant's subscriptions in a calendar month, rated from the one usage query.

A draft is the live estimate for an open month, recomputed after each rollup and
whenever a subscription changes; once the month has closed the monthly task
finalizes it and it never changes again. A reseller's own statement (its
subscription to a partner's or the platform's plan) rates its whole subtree —
what it owes upstream; its customers' statements are what it charges them.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from accounts.models import Tenant
from billing.failures import FailureLog
from billing.models import Statement, StatementLine, Subscription, TenantFailure
from billing.money import ZERO
from billing.periods import month_of, next_month, segment_of
from billing.rating import prorated_fee, rate_item, true_up
from billing.selectors import final_tenant_ids, subscriptions_in, usage_by_item
from billing.signals import statement_finalized


@dataclass
class StatementDraft:
    tenant: Tenant
    period: date
    currency: str
    base_fee: Decimal = ZERO
    minimum_commitment: Decimal = ZERO
    lines: list[StatementLine] = field(default_factory=list)

    @property
    def usage_amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def true_up(self) -> Decimal:
        return true_up(self.minimum_commitment, self.base_fee + self.usage_amount)

    @property
    def total(self) -> Decimal:
        return self.base_fee + self.usage_amount + self.true_up


def rate_statement(tenant: Tenant, period: date, subscriptions=None) -> StatementDraft | None:
    """Rate each subscription segment of `period` against its own plan."""
    if subscriptions is None:
        subscriptions = list(subscriptions_in(period).filter(tenant=tenant))
    if not subscriptions:
        return None
    draft = StatementDraft(tenant=tenant, period=period, currency=subscriptions[-1].plan.currency)
    for subscription in subscriptions:
        plan = subscription.plan
        start, end = segment_of(subscription, period)
        draft.base_fee += prorated_fee(plan.base_fee, start, end, plan.currency)
        draft.minimum_commitment += prorated_fee(plan.minimum_commitment, start, end, plan.currency)
        items = list(plan.items.select_related("meter"))
        if not items:
            continue
        used = usage_by_item(tenant, start, end, items)
        for item in items:
            rated = rate_item(item, used[item.pk], plan.currency)
            draft.lines.append(
                StatementLine(
                    meter=item.meter,
                    dimension=item.dimension,
                    charge_model=rated.charge_model,
                    plan_code=plan.code,
                    starts_on=start,
                    ends_on=end,
                    used=rated.used,
                    included=rated.included,
                    overage=rated.overage,
                    unit_price=rated.unit_price,
                    tiers=[tier.as_json() for tier in rated.tiers],
                    amount=rated.amount,
                )
            )
    return draft


def statement_number(statement: Statement) -> str:
    """The number a statement carries from the moment it is final: its month and its
    id, "2025-03-000042". Both never change, so neither does the number; the id makes
    it unique across the platform without a counter to lock."""
    return f"{statement.period:%Y-%m}-{statement.pk:06d}"


def refresh_statement(tenant: Tenant, period: date, *, final: bool = False, subscriptions=None):
    """Recompute the draft of `period` (or finalize it). A final statement never changes."""
    draft = rate_statement(tenant, period, subscriptions)
    with transaction.atomic():
        existing = (
            Statement.objects.select_for_update().filter(tenant=tenant, period=period).first()
        )
        if existing is not None and existing.status == Statement.Status.FINAL:
            return existing
        if draft is None:
            if existing is not None:
                existing.delete()  # the subscription behind a draft was removed
            return None
        now = timezone.now()
        statement = existing or Statement(tenant=tenant, period=period)
        statement.currency = draft.currency
        statement.base_fee = draft.base_fee
        statement.usage_amount = draft.usage_amount
        statement.minimum_commitment = draft.minimum_commitment
        statement.true_up = draft.true_up
        statement.total = draft.total
        statement.as_of = now
        if final:
            statement.status = Statement.Status.FINAL
            statement.finalized_at = now
            transaction.on_commit(
                lambda: statement_finalized.send(sender=Statement, statement=statement)
            )
        statement.save()
        if final:
            statement.number = statement_number(statement)
            statement.save(update_fields=["number"])
        statement.lines.all().delete()
        for line in draft.lines:
            line.statement = statement
        StatementLine.objects.bulk_create(draft.lines)
    return statement


def refresh_drafts(today: date | None = None) -> int:
    """Recompute every draft not yet final: the open month's, and closed months'
    that wait for the monthly finalization. Returns how many were refreshed."""
    today = today or timezone.now().date()
    refreshed, failures = 0, FailureLog(TenantFailure.Job.STATEMENT)
    for period in periods_to_refresh(today):
        for tenant, subscriptions in subscriptions_by_tenant(period).items():
            with failures.guard(tenant):
                if refresh_statement(tenant, period, subscriptions=subscriptions) is not None:
                    refreshed += 1
    return refreshed


def periods_to_refresh(today: date) -> list[date]:
    current = month_of(today)
    waiting = set(
        Statement.objects.filter(status=Statement.Status.DRAFT, period__lt=current).values_list(
            "period", flat=True
        )
    )
    return sorted(waiting | {current})


def subscriptions_by_tenant(period: date) -> dict[Tenant, list[Subscription]]:
    grouped = defaultdict(list)
    for subscription in subscriptions_in(period):
        grouped[subscription.tenant].append(subscription)
    return grouped


def finalize_closed_periods(today: date | None = None) -> int:
    """Finalize every statement of a month that has closed; idempotent, so a schedule
    that missed months catches up. Returns how many statements became final."""
    today = today or timezone.now().date()
    finalized, failures = 0, FailureLog(TenantFailure.Job.FINALIZE)
    for period in periods_to_finalize(today):
        finals = final_tenant_ids(period)
        for tenant, subscriptions in subscriptions_by_tenant(period).items():
            if tenant.pk not in finals:
                with failures.guard(tenant):
                    refresh_statement(tenant, period, final=True, subscriptions=subscriptions)
                    finalized += 1
    return finalized


def periods_to_finalize(today: date) -> list[date]:
    """Closed months with a subscription whose statement is not final yet."""
    current = month_of(today)
    first = Subscription.objects.order_by("starts_on").values_list("starts_on", flat=True).first()
    periods, period = [], month_of(first) if first else current
    while period < current:
        if subscriptions_in(period).exclude(tenant_id__in=final_tenant_ids(period)).exists():
            periods.append(period)
        period = next_month(period)
    return periods
