"""A reseller's margin for a month: what its customers' statements charge (retail)
against what its own statement owes upstream (wholesale), per meter and in total."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from accounts.models import Tenant
from billing.models import Statement
from billing.money import ZERO

BASE_FEE = "base_fee"


@dataclass
class MarginRow:
    meter: str  # a meter code, or "base_fee"
    retail: Decimal
    wholesale: Decimal

    @property
    def margin(self) -> Decimal:
        return self.retail - self.wholesale


@dataclass
class Margin:
    tenant: Tenant
    period: date
    currency: str | None
    rows: list[MarginRow]
    customer_statements: int
    excluded_statements: int  # customers billed in another currency than the wholesale one

    @property
    def retail(self) -> Decimal:
        return sum((row.retail for row in self.rows), ZERO)

    @property
    def wholesale(self) -> Decimal:
        return sum((row.wholesale for row in self.rows), ZERO)

    @property
    def margin(self) -> Decimal:
        return self.retail - self.wholesale


def reseller_margin(tenant: Tenant, period: date) -> Margin:
    """Retail is every statement strictly below `tenant`; wholesale is its own."""
    own = Statement.objects.filter(tenant=tenant, period=period).first()
    customers = list(
        Statement.objects.filter(
            tenant__tree_id=tenant.tree_id,
            tenant__lft__gt=tenant.lft,
            tenant__rght__lt=tenant.rght,
            period=period,
        ).prefetch_related("lines__meter")
    )
    currency = own.currency if own else (customers[0].currency if customers else None)
    retail, wholesale = defaultdict(lambda: ZERO), defaultdict(lambda: ZERO)
    included = [s for s in customers if s.currency == currency]
    for statement in included:
        add_amounts(retail, statement)
    if own is not None:
        add_amounts(wholesale, own)
    codes = sorted(set(retail) | set(wholesale), key=lambda code: (code != BASE_FEE, code))
    return Margin(
        tenant=tenant,
        period=period,
        currency=currency,
        rows=[MarginRow(code, retail[code], wholesale[code]) for code in codes],
        customer_statements=len(included),
        excluded_statements=len(customers) - len(included),
    )


def add_amounts(totals: dict, statement: Statement) -> None:
    totals[BASE_FEE] += statement.base_fee
    for line in statement.lines.all():
        totals[line.meter.code] += line.amount
