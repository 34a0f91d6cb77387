"""A seller's margin for a month: what it bills its own customers (retail) against
what it owes upstream (wholesale), per meter, in total and per customer.

A seller is a partner, a reseller, or the platform itself (the plans without an
owner; its customers are whoever subscribes to them, and it owes nobody).

- Retail is the part of each customer statement billed on plans the seller owns:
  the lines whose `plan_code` is one of its plans, and the base fee of the
  segments on its plans. Statements further down are other sellers' retail, never
  this one's. A statement covering two subscriptions of different sellers' plans
  (a mid-month change) is split by segment; see `base_fee_part`.
- Wholesale is the seller's own statement (0 without a subscription).
- Per customer (the chargeback view), the wholesale is attributed to the
  customers: each wholesale meter line by their usage of that meter over the
  line's days, the wholesale base fee by their share of retail (see
  `charge_back`), to the currency's minor unit and adding up to the wholesale.

Customers billed in another currency than the wholesale one cannot be added up
with it: they are left out and counted in `excluded_statements`. Without an own
statement (the platform, a seller with no subscription) the margin is in the
currency most of its customers are billed in.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from math import floor

from django.db.models import Q

from accounts.models import Tenant, subtrees_q
from billing.models import Plan, Statement, StatementLine, Subscription
from billing.money import ZERO, minor_unit
from billing.periods import month_end, segment_of
from billing.rating import prorated_fee
from billing.selectors import subscriptions_in
from billing.usage import UsageFilters, usage_summary

BASE_FEE = "base_fee"
SELLER_KINDS = frozenset({Tenant.Kind.PARTNER, Tenant.Kind.RESELLER})


def is_seller(tenant: Tenant) -> bool:
    """Partners and resellers own plans and bill customers; organizations and agents buy."""
    return tenant.kind in SELLER_KINDS


@dataclass
class MarginRow:
    meter: str  # a meter code, or "base_fee"
    retail: Decimal
    wholesale: Decimal

    @property
    def margin(self) -> Decimal:
        return self.retail - self.wholesale


@dataclass
class CustomerMargin:
    tenant: Tenant
    retail: Decimal  # the seller's part of the customer's statement
    wholesale_share: Decimal = ZERO  # the seller's wholesale attributed to this customer

    @property
    def margin(self) -> Decimal:
        return self.retail - self.wholesale_share


@dataclass
class Margin:
    tenant: Tenant | None  # None: the platform
    period: date
    currency: str | None
    rows: list[MarginRow]
    customers: list[CustomerMargin] = field(default_factory=list)
    customer_statements: int = 0
    excluded_statements: int = 0  # customers billed in another currency than the wholesale one

    @property
    def retail(self) -> Decimal:
        return sum((row.retail for row in self.rows), ZERO)

    @property
    def wholesale(self) -> Decimal:
        return sum((row.wholesale for row in self.rows), ZERO)

    @property
    def margin(self) -> Decimal:
        return self.retail - self.wholesale


@dataclass(frozen=True)
class Segment:
    """The days of a customer statement spent on one plan."""

    ours: bool  # the plan is the seller's
    fee: Decimal  # its prorated base fee, as rating computed it


def seller_margin(seller: Tenant | None, period: date) -> Margin:
    """The margin of `seller` (None: the platform) for the month starting `period`."""
    own = own_statement(seller, period)
    owned = owned_plan_codes(seller)
    statements = customer_statements(seller, period, owned)
    currency = own.currency if own else usual_currency(statements)
    included = [s for s in statements if s.currency == currency]
    segments = segments_by_tenant(period, [s.tenant_id for s in included], owned)
    parts = {s.tenant: retail_part(s, owned, segments.get(s.tenant_id, [])) for s in included}
    retail, wholesale = defaultdict(lambda: ZERO), amounts_of(own)
    for amounts in parts.values():
        for code, amount in amounts.items():
            retail[code] += amount
    codes = sorted(set(retail) | set(wholesale), key=lambda code: (code != BASE_FEE, code))
    rows = [MarginRow(code, retail[code], wholesale[code]) for code in codes]
    shares = charge_back(seller, own, parts, sum((r.wholesale for r in rows), ZERO))
    customers = [
        CustomerMargin(tenant, sum(amounts.values(), ZERO), shares.get(tenant, ZERO))
        for tenant, amounts in sorted(parts.items(), key=lambda item: customer_order(item[0]))
    ]
    return Margin(
        tenant=seller,
        period=period,
        currency=currency,
        rows=rows,
        customers=customers,
        customer_statements=len(included),
        excluded_statements=len(statements) - len(included),
    )


def own_statement(seller: Tenant | None, period: date) -> Statement | None:
    if seller is None:
        return None  # the platform is at the top: it owes nobody
    return (
        Statement.objects.filter(tenant=seller, period=period)
        .prefetch_related("lines__meter")
        .first()
    )


def owned_plans(seller: Tenant | None):
    return Plan.objects.filter(owner__isnull=True) if seller is None else seller.plans.all()


def owned_plan_codes(seller: Tenant | None) -> set[str]:
    return set(owned_plans(seller).values_list("code", flat=True))


def customer_statements(seller: Tenant | None, period: date, owned: set[str]) -> list[Statement]:
    """Statements of `period` that bill something on the seller's plans: a line of one
    of them, or a subscription to one (a plan without items leaves no line)."""
    on_plan = Subscription.objects.in_force(period, month_end(period)).filter(plan__code__in=owned)
    with_line = StatementLine.objects.filter(statement__period=period, plan_code__in=owned)
    statements = Statement.objects.filter(period=period).filter(
        Q(tenant__in=on_plan.values("tenant_id")) | Q(pk__in=with_line.values("statement_id"))
    )
    if seller is not None:
        # Plans are subscribed only inside their owner's tree; a customer moved out of
        # it since is no longer this seller's to see.
        statements = statements.filter(subtrees_q([seller], "tenant__")).exclude(tenant=seller)
    return list(statements.select_related("tenant").prefetch_related("lines__meter"))


def usual_currency(statements: list[Statement]) -> str | None:
    """Without an own statement: the currency most customers are billed in (ties by code)."""
    counts = Counter(s.currency for s in statements)
    return min(counts, key=lambda code: (-counts[code], code)) if counts else None


def segments_by_tenant(period: date, tenant_ids: list[int], owned: set[str]) -> dict:
    """Each tenant's subscription segments of `period`, in order, as rating saw them."""
    segments = defaultdict(list)
    for subscription in subscriptions_in(period).filter(tenant_id__in=tenant_ids):
        plan = subscription.plan
        start, end = segment_of(subscription, period)
        fee = prorated_fee(plan.base_fee, start, end, plan.currency)
        segments[subscription.tenant_id].append(Segment(plan.code in owned, fee))
    return segments


def retail_part(statement: Statement, owned: set[str], segments: list[Segment]) -> dict:
    """What the seller bills on this statement, by meter code and base fee."""
    amounts = defaultdict(lambda: ZERO)
    amounts[BASE_FEE] = base_fee_part(statement, segments)
    for line in statement.lines.all():
        if line.plan_code in owned:
            amounts[line.meter.code] += line.amount
    return amounts


def base_fee_part(statement: Statement, segments: list[Segment]) -> Decimal:
    """The seller's part of a statement's base fee.

    The stored base fee is the sum of each segment's prorated fee. On one seller's
    plans only (the usual case, a change between two of its plans included) it is
    all that seller's. Across sellers each gets its segments' prorated fees, and
    any difference from the stored fee (a plan's fee edited after the statement was
    stored) goes with the last segment, whose plan set the statement's currency.
    Without segments (subscriptions removed since) the statement was found by its
    lines on the seller's plans, and counts as the seller's.
    """
    if all(segment.ours for segment in segments):
        return statement.base_fee
    if not any(segment.ours for segment in segments):
        return ZERO
    part = sum((segment.fee for segment in segments if segment.ours), ZERO)
    if segments[-1].ours:
        part += statement.base_fee - sum((segment.fee for segment in segments), ZERO)
    return part


def amounts_of(statement: Statement | None) -> dict:
    amounts = defaultdict(lambda: ZERO)
    if statement is not None:
        amounts[BASE_FEE] += statement.base_fee
        for line in statement.lines.all():
            amounts[line.meter.code] += line.amount
    return amounts


def customer_order(tenant: Tenant) -> tuple:
    return (tenant.name, tenant.slug)


# --- Chargeback: the wholesale attributed to customers -----------------------


def charge_back(
    seller: Tenant | None, own: Statement | None, parts: dict, wholesale: Decimal
) -> dict[Tenant, Decimal]:
    """The wholesale shared out over the customers, to the minor unit, adding up to it.

    Each wholesale meter line goes by the customers' usage of that meter over the
    line's days: their subtree usage, as their own statements count it (a customer
    inside another customer's tree weighs in both, as both are billed for it). A
    line no customer used (usage from tenants nobody bills) and the wholesale base
    fee go by share of retail, equally when no customer has any. Shares are summed
    exactly and rounded once per customer (see `allocate`).
    """
    if own is None or not parts:
        return {}
    by_retail = positive_weights({tenant: sum(a.values(), ZERO) for tenant, a in parts.items()})
    quotas = defaultdict(Fraction)
    spread(quotas, own.base_fee, by_retail)
    named = dimensions_named(own)
    for (start, end), lines in lines_by_segment(own).items():
        for filters, rated in lines_by_usage(lines, named):
            usage = customer_usage(seller, list(parts), start, end, filters)
            for line in rated:
                by_usage = {t: max(usage.get((t.pk, line.meter_id), ZERO), ZERO) for t in parts}
                spread(quotas, line.amount, by_usage if any(by_usage.values()) else by_retail)
    return allocate(wholesale, quotas, minor_unit(own.currency))


def dimensions_named(statement: Statement) -> dict[tuple, list[str]]:
    """(segment start, end, meter id) -> the dimension values its lines name."""
    named = defaultdict(list)
    for line in statement.lines.exclude(dimension=None):
        named[(line.starts_on, line.ends_on, line.meter_id)].append(line.dimension)
    return named


def lines_by_usage(lines: list[StatementLine], named: dict):
    """(filters, lines) pairs: the usage each wholesale line rates. Lines of whole
    meters share one summary; a line of one dimension value, or of the rest of a
    meter priced per value, has its own."""
    whole = [line for line in lines if (line.starts_on, line.ends_on, line.meter_id) not in named]
    if whole:
        yield UsageFilters(meters=tuple(sorted({line.meter.code for line in whole}))), whole
    for line in lines:
        listed = named.get((line.starts_on, line.ends_on, line.meter_id))
        if listed is None:
            continue
        if line.dimension is not None:
            yield UsageFilters(meters=(line.meter.code,), dimension=line.dimension), [line]
        else:
            yield UsageFilters(meters=(line.meter.code,), exclude_dimensions=tuple(listed)), [line]


def positive_weights(weights: dict) -> dict:
    """Negative retail (a credit) carries no cost; all zero: equal weights."""
    weights = {key: max(value, ZERO) for key, value in weights.items()}
    return weights if any(weights.values()) else dict.fromkeys(weights, Decimal(1))


def spread(quotas: dict, amount: Decimal, weights: dict) -> None:
    """Add `amount` to the quotas in proportion to `weights`, exactly (as fractions)."""
    total = sum(weights.values(), ZERO)
    for key, weight in weights.items():
        quotas[key] += Fraction(amount) * Fraction(weight) / Fraction(total)


def lines_by_segment(statement: Statement) -> dict[tuple[date, date], list[StatementLine]]:
    """The statement's lines with an amount, by the days they rate."""
    lines = defaultdict(list)
    for line in statement.lines.all():
        if line.amount:
            lines[(line.starts_on, line.ends_on)].append(line)
    return lines


def customer_usage(seller: Tenant, customers: list[Tenant], start, end, filters) -> dict:
    """(tenant id, meter id) -> each customer's subtree usage passing `filters`.

    The seller's children come from one summary grouped by child, so a reseller with
    thousands of organizations costs one usage query; a customer further down (on
    the seller's plan without being its child) from its own summary.
    """
    usage = {}
    children = {c.pk for c in customers if c.parent_id == seller.pk}
    if children:
        for row in usage_summary(seller, start, end, "child", filters).rows:
            if row.key.pk in children:
                usage[(row.key.pk, row.meter.pk)] = row.quantity
    for customer in customers:
        if customer.pk not in children:
            for row in usage_summary(customer, start, end, "meter", filters).rows:
                usage[(customer.pk, row.meter.pk)] = row.quantity
    return usage


def allocate(total: Decimal, quotas: dict, unit: Decimal) -> dict[Tenant, Decimal]:
    """Round each exact quota down to the minor unit, then hand the units left over
    one each to the largest remainders (ties by customer name and slug), so the
    parts add up to `total` exactly: the largest-remainder method."""
    step = Fraction(unit)
    units = {key: floor(quota / step) for key, quota in quotas.items()}
    order = sorted(quotas, key=lambda k: (-(quotas[k] / step - units[k]), customer_order(k)))
    left = floor(Fraction(total) / step) - sum(units.values())
    for key in order[: max(left, 0)]:
        units[key] += 1
    parts = {key: unit * count for key, count in units.items()}
    # A total off the minor unit (never from rating, which rounds every amount)
    # leaves a fraction of a unit: it goes with the first share, so nothing is lost.
    if residue := total - sum(parts.values(), ZERO):
        parts[order[0]] += residue
    return parts
