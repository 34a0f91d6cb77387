"""What a report page shows, read from the one usage query.

Every number here comes from `billing.usage.usage_summary`; this module only
arranges its rows for cards, tables and charts. The number of summaries a page
asks for is fixed (it does not grow with children, meters or days), which
keeps a partner page as fast as an agent page.
"""

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from accounts.models import Tenant, subtrees_q
from billing.margin import BASE_FEE, is_seller, seller_margin
from billing.models import Statement, StatementLine, UsageAlert
from billing.periods import month_of
from billing.plan_rules import alert_base, allowance_used_up, thresholds_crossed
from billing.selectors import (
    StatementPricing,
    statement_pricing,
    statement_totals,
    subscription_covering,
    usage_by_item,
)
from billing.usage import UsageFilters, UsageSummary, usage_summary
from metering.catalog import CATALOG
from metering.models import Meter
from reports.date_ranges import DateRange
from reports.formatting import DisplayUnit, column_unit, display_unit, unit_notes

TOP_CONSUMERS = 10
CHART_STACKS = 5
STACK_BY = ("child", "dimension")


# The catalog's own order puts each category's headline meter first
# (processing units before computation time); meters added later follow by code.
CATALOG_POSITION = {row[0]: n for n, row in enumerate(CATALOG)}


def in_catalog_order(meters) -> list[Meter]:
    return sorted(meters, key=lambda m: (CATALOG_POSITION.get(m.code, len(CATALOG)), m.code))


# --- Tenants below a page's tenant ------------------------------------------

PATH_SEPARATOR = " › "


def tenant_paths(tenant: Tenant) -> dict[int, str]:
    """Each tenant of the subtree by the names leading to it from `tenant`'s children
    ("Org A › Agent 1"), so agents of the same name in two organizations read apart;
    `tenant` itself by its own name. One query, however deep the subtree."""
    rows = tenant.get_descendants().order_by("level").values_list("pk", "parent_id", "name")
    paths = {tenant.pk: tenant.name}
    for pk, parent_id, name in rows:
        above = paths[parent_id] if parent_id != tenant.pk else ""
        paths[pk] = f"{above}{PATH_SEPARATOR}{name}" if above else name
    return paths


# --- Plan allowances and charges, from billing -----------------------------


@dataclass(frozen=True)
class Charge:
    """What a month's statement bills, in its currency; a draft until the month closes."""

    amount: Decimal
    currency: str
    period: date  # the statement's month
    final: bool = False


@dataclass(frozen=True)
class PlanAllowance:
    """What one plan item allows: filled in by the billing app's plans."""

    included: Decimal
    limit: Decimal | None = None
    thresholds: tuple[int, ...] = ()
    # The usage the plan counts, when it differs from the card's total: the
    # subscription started or ended inside the period, or a source or dimension
    # filter narrows the card. Alerts and entitlements count exactly this.
    counted: Decimal | None = None
    # The item's dimension value; None for the meter's item for every (other) value.
    dimension: str | None = None
    # The meter has items per dimension value: this item counts only its own part.
    per_dimension: bool = False
    # The item's amount on the month's statement, for an item without an allowance.
    charge: Charge | None = None

    @property
    def has_allowance(self) -> bool:
        """Whether there is anything to measure usage against: an included quantity or a
        limit. An item that only prices usage shows its charge instead of a bar."""
        return self.included > 0 or self.limit is not None


def billing_month(period: DateRange) -> date | None:
    """Plans allow and statements charge per calendar month: a period inside one
    month is compared with them; a period across months is not (no bar, no charges)."""
    if month_of(period.start) != month_of(period.end):
        return None
    return month_of(period.start)


def plan_allowances(
    tenant: Tenant, period: DateRange, filters: UsageFilters | None = None
) -> dict[str, list[PlanAllowance]]:
    """The plan items' allowances per meter code (one per item: a meter priced per
    dimension value has several) for the tenant's own subscription in the period."""
    if billing_month(period) is None:
        return {}
    subscription = subscription_covering(tenant, period.start, period.end)
    if subscription is None:
        return {}
    items = list(subscription.plan.items.select_related("meter"))
    start = max(subscription.starts_on, period.start)
    end = min(subscription.ends_on or period.end, period.end)
    narrowed = filters is not None and (filters.source or filters.dimension is not None)
    split = {item.meter_id for item in items if item.dimension is not None}
    counted = None
    if (start, end) != (period.start, period.end) or narrowed or split:
        counted = usage_by_item(tenant, start, end, items)
    charges = {}
    if any(item.included_quantity <= 0 and item.limit is None for item in items):
        charges = item_charges(tenant, billing_month(period), subscription.plan.code)
    allowances: dict[str, list[PlanAllowance]] = {}
    for item in items:
        allowances.setdefault(item.meter.code, []).append(
            PlanAllowance(
                item.included_quantity,
                item.limit,
                tuple(item.thresholds),
                None if counted is None else counted[item.pk],
                dimension=item.dimension,
                per_dimension=item.meter_id in split,
                charge=charges.get((item.meter_id, item.dimension)),
            )
        )
    return allowances


def item_charges(tenant: Tenant, month: date, plan_code: str) -> dict[tuple, Charge]:
    """The tenant's statement of the month, per (meter id, dimension) of the plan's lines
    (a plan that came back within the month has a line per stretch: added up)."""
    statement = Statement.objects.filter(tenant=tenant, period=month).first()
    if statement is None:
        return {}
    amounts: dict[tuple, Decimal] = defaultdict(Decimal)
    lines = StatementLine.objects.filter(statement=statement, plan_code=plan_code)
    for meter_id, dimension, amount in lines.values_list("meter_id", "dimension", "amount"):
        amounts[(meter_id, dimension)] += amount
    final = statement.status == Statement.Status.FINAL
    return {
        key: Charge(amount, statement.currency, month, final) for key, amount in amounts.items()
    }


def child_charges(tenant: Tenant, period: DateRange) -> dict[int, Charge]:
    """What each child is billed for the month (its statement total: a customer's
    retail charges, or a reseller's wholesale bill on a partner's page)."""
    month = billing_month(period)
    if month is None:
        return {}
    children = tenant.get_children().values_list("pk", flat=True)
    return {
        pk: Charge(s.total, s.currency, month, s.status == Statement.Status.FINAL)
        for pk, s in statement_totals(children, month).items()
    }


def children_billed(tenant: Tenant) -> bool:
    """Whether any child of the tenant has a statement (so a Charges column can apply)."""
    return Statement.objects.filter(tenant__parent=tenant).exists()


@dataclass(frozen=True)
class PlanBar:
    used_percent: Decimal  # of the bar's full length (the limit, else the included quantity)
    included_percent: Decimal | None  # where the included quantity sits when there is a limit
    level: str  # "ok", "warn" (a threshold crossed) or "over" (past the limit/included)
    crossed: tuple[int, ...]


def plan_bar(used: Decimal, allowance: PlanAllowance) -> PlanBar | None:
    """Used against the plan, colored by the highest alert threshold crossed; "over"
    once the base is used up (billing.plan_rules, as alerts and entitlements say).
    None for an item with nothing to measure against (nothing included, no limit)."""
    if not allowance.has_allowance:
        return None
    if allowance.counted is not None:
        used = allowance.counted
    base = alert_base(allowance.limit, allowance.included)
    crossed = thresholds_crossed(used, base, allowance.thresholds)
    if allowance_used_up(used, base):
        level = "over"
    elif crossed:
        level = "warn"
    else:
        level = "ok"
    percent = used * 100 / base if base > 0 else Decimal(100)
    included_at = (
        round_percent(allowance.included * 100 / allowance.limit) if allowance.limit else None
    )
    return PlanBar(round_percent(min(percent, Decimal(100))), included_at, level, crossed)


def round_percent(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# --- Meter cards -----------------------------------------------------------


@dataclass
class MeterCard:
    meter: Meter
    quantity: Decimal
    previous: Decimal
    allowances: list[PlanAllowance] = field(default_factory=list)

    @property
    def change_percent(self) -> Decimal | None:
        """Change against the previous period; None when that was zero (shown as —)."""
        if not self.previous:
            return None
        return round_percent((self.quantity - self.previous) * 100 / abs(self.previous))

    @property
    def direction(self) -> str:
        change = self.change_percent
        if change is None or change == 0:
            return ""
        return "up" if change > 0 else "down"

    @property
    def bars(self) -> list[tuple[PlanAllowance, PlanBar | None]]:
        """One entry per plan item of the meter (named dimension values first): its bar,
        or None where the item has no allowance (the card shows its charge instead)."""
        return [(allowance, plan_bar(self.quantity, allowance)) for allowance in self.allowances]

    @property
    def unit(self) -> DisplayUnit:
        """The unit the card reads in (and its previous period and plan figures)."""
        return display_unit(self.meter.unit, self.quantity)


def meter_cards(
    current: UsageSummary,
    previous: UsageSummary,
    allowances: dict[str, list[PlanAllowance]] | None = None,
) -> list[MeterCard]:
    """One card per selected meter (zero when unused), against the previous period."""
    allowances = allowances or {}
    now = {r.meter.pk: r.quantity for r in current.rows}
    before = {r.meter.pk: r.quantity for r in previous.rows}
    zero = Decimal(0)
    return [
        MeterCard(
            meter=m,
            quantity=now.get(m.pk, zero),
            previous=before.get(m.pk, zero),
            allowances=allowances.get(m.code, []),
        )
        for m in in_catalog_order(current.meters)
    ]


# --- Children and top consumers --------------------------------------------


@dataclass
class ChildUsage:
    """One row of the children table: a child (or the tenant's own usage) by meter."""

    tenant: Tenant
    quantities: dict[str, Decimal]
    own: bool = False  # the tenant's usage outside its children's subtrees
    # Its statement total, for a period inside one month (`child_charges`); None without one.
    charges: Charge | None = None

    @property
    def name(self) -> str:
        return f"{self.tenant.name} (own usage)" if self.own else self.tenant.name

    @property
    def kind(self) -> str:
        return "own usage" if self.own else self.tenant.get_kind_display()

    @property
    def slug(self) -> str:
        return self.tenant.slug


def children_usage(summary: UsageSummary, children: list[Tenant] = ()) -> list[ChildUsage]:
    """A `group_by="child"` summary pivoted to one row per child, meters as columns.

    Every child in `children` has a row, used or not (the table is also how one
    drills down). The tenant's own usage (events recorded on it, not on a
    child) gets a row of its own so the column totals add up to the meter cards.
    """
    if summary.group_by != "child":
        raise ValueError("children_usage needs a summary grouped by child")
    zero = {m.code: Decimal(0) for m in summary.meters}
    rows: dict[int, ChildUsage] = {c.pk: ChildUsage(c, dict(zero)) for c in children}
    for row in summary.rows:
        child = row.key
        if child.pk not in rows:
            rows[child.pk] = ChildUsage(child, dict(zero), own=child.pk == summary.tenant.pk)
        rows[child.pk].quantities[row.meter.code] = row.quantity
    # An own-usage row of zeros says nothing (the summary can carry one from a
    # subtree total less its children's).
    shown = [c for c in rows.values() if not c.own or any(c.quantities.values())]
    return sorted(shown, key=lambda c: (c.own, c.tenant.name))


@dataclass
class Consumer:
    tenant: Tenant
    quantity: Decimal
    share: Decimal  # percent of the tenant's total for the meter


def top_consumers(
    children: list[ChildUsage], meter: Meter | None, total: Decimal, limit: int = TOP_CONSUMERS
) -> list[Consumer]:
    """The children using most of `meter`, largest first, without the idle ones.

    Children, not deeper levels: one level down is what a page links to
    (partner → resellers, reseller → organizations, organization → agents),
    and it comes from the same summary as the children table at no extra cost.
    """
    if meter is None:
        return []
    used = [c for c in children if not c.own and c.quantities.get(meter.code)]
    used.sort(key=lambda c: (-c.quantities[meter.code], c.tenant.name))
    return [
        Consumer(
            c.tenant,
            c.quantities[meter.code],
            round_percent(c.quantities[meter.code] * 100 / total) if total else Decimal(0),
        )
        for c in used[:limit]
    ]


# --- Daily chart series ----------------------------------------------------


@dataclass
class Stack:
    label: str
    values: list[Decimal]
    rest: bool = False  # what the named stacks leave: "Other", or the tenant's own usage


@dataclass
class UsageChart:
    """The report chart: one meter's usage per day, stacked by child or dimension value."""

    meter: Meter
    days: list[date]
    stacks: list[Stack] = field(default_factory=list)
    stack_by: str = "child"
    stack_options: tuple[str, ...] = ()  # what the chart may be stacked by here

    @property
    def totals(self) -> list[Decimal]:
        return [sum((s.values[i] for s in self.stacks), Decimal(0)) for i in range(len(self.days))]

    @property
    def unit(self) -> DisplayUnit:
        """The unit the chart's axis and its table of numbers read in: the largest day's."""
        return column_unit(self.meter.unit, self.totals)

    def rows(self):
        """(day, value per stack..., total) for the chart's table of numbers."""
        for i, day in enumerate(self.days):
            values = [s.values[i] for s in self.stacks]
            yield day, values, sum(values, Decimal(0))


def stack_options(tenant: Tenant, meter: Meter) -> tuple[str, ...]:
    """Stacking by child needs children (an agent has none); by dimension needs a
    meter that records one."""
    by_child = ("child",) if not tenant.is_leaf_node() else ()
    return by_child + (("dimension",) if meter.group_by else ())


def daily_series(
    tenant: Tenant,
    period: DateRange,
    filters: UsageFilters,
    meter: Meter,
    stack_by: str = "child",
    stacks: int = CHART_STACKS,
    ranking: UsageSummary | None = None,
) -> UsageChart:
    """The meter's daily usage, stacked by the largest children or dimension values.

    A bounded number of summaries: the daily total, the ranking (unless the
    caller already holds a summary grouped by `stack_by` with the same
    filters), and one daily summary per stack; whatever the top stacks leave is
    one more stack ("Other"), so the stacks add up to the daily total.
    """
    if stack_by not in STACK_BY:
        raise ValueError(f"stack_by must be one of {', '.join(STACK_BY)}")
    options = stack_options(tenant, meter)
    if options and stack_by not in options:
        stack_by = options[0]
    filters = replace(filters, meters=(meter.code,), category="")
    days = [period.start + timedelta(days=n) for n in range(period.days)]
    total = daily_values(usage_summary(tenant, period.start, period.end, "day", filters), days)
    if ranking is None or ranking.group_by != stack_by:
        ranking = usage_summary(tenant, period.start, period.end, stack_by, filters)
    ranked = sorted(
        (
            r
            for r in ranking.rows
            if r.meter.pk == meter.pk and r.quantity and not is_own(r.key, tenant)
        ),
        key=lambda r: -r.quantity,
    )
    series = UsageChart(meter, days, stack_by=stack_by, stack_options=options)
    for row in ranked[:stacks]:
        if stack_by == "child":
            daily = usage_summary(row.key, period.start, period.end, "day", filters)
            label = row.key.name
        else:
            by_value = replace(filters, dimension=row.key)
            daily = usage_summary(tenant, period.start, period.end, "day", by_value)
            label = row.key or "(none)"
        series.stacks.append(Stack(label, daily_values(daily, days)))
    rest = [t - s for t, s in zip(total, series.totals, strict=True)]
    if any(rest) or not series.stacks:
        label = rest_label(tenant, stack_by, len(ranked) > stacks)
        series.stacks.append(Stack(label, rest, rest=True))
    return series


def is_own(key, tenant: Tenant) -> bool:
    return isinstance(key, Tenant) and key.pk == tenant.pk


def rest_label(tenant: Tenant, stack_by: str, more_groups: bool) -> str:
    if stack_by == "child" and not more_groups:
        return f"{tenant.name} (own usage)"
    return "Other"


def daily_values(summary: UsageSummary, days: list[date]) -> list[Decimal]:
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for row in summary.rows:
        by_day[row.key] += row.quantity
    return [by_day.get(d, Decimal(0)) for d in days]


# --- The whole page --------------------------------------------------------


@dataclass
class TenantReport:
    tenant: Tenant
    period: DateRange
    previous_period: DateRange
    cards: list[MeterCard]
    children: list[ChildUsage]
    meters: list[Meter]
    focus: Meter | None
    top: list[Consumer]
    series: UsageChart | None
    summary: UsageSummary  # this period by meter: its as-of time and last rollup
    # The period spans months while the children have statements: no Charges column.
    charges_need_one_month: bool = False

    @property
    def focus_unit(self) -> DisplayUnit | None:
        """The focus meter's card unit, for the top consumers."""
        return next((c.unit for c in self.cards if c.meter == self.focus), None)

    @property
    def unit_notes(self) -> list[tuple[str, str]]:
        """What the page's units mean (PU, SU, BU; durations and sizes)."""
        return unit_notes(m.unit for m in self.meters)


def tenant_report(
    tenant: Tenant, period: DateRange, filters: UsageFilters, stack_by: str = "child"
) -> TenantReport:
    """Everything the report page shows for one tenant, period and filter set."""
    current = usage_summary(tenant, period.start, period.end, "meter", filters)
    previous_period = period.previous()
    previous = usage_summary(tenant, previous_period.start, previous_period.end, "meter", filters)
    cards = meter_cards(current, previous, plan_allowances(tenant, period, filters))
    by_child = usage_summary(tenant, period.start, period.end, "child", filters)
    children = children_usage(by_child, list(tenant.get_children()))
    charges = child_charges(tenant, period)
    for child in children:
        child.charges = charges.get(child.tenant.pk)
    focus = focus_meter(cards, filters)
    total = next((c.quantity for c in cards if c.meter == focus), Decimal(0))
    series = (
        daily_series(tenant, period, filters, focus, stack_by, ranking=by_child) if focus else None
    )
    return TenantReport(
        tenant=tenant,
        period=period,
        previous_period=previous_period,
        cards=cards,
        children=children,
        meters=in_catalog_order(current.meters),
        focus=focus,
        top=top_consumers(children, focus, total),
        series=series,
        summary=current,
        charges_need_one_month=billing_month(period) is None and children_billed(tenant),
    )


def focus_meter(cards: list[MeterCard], filters: UsageFilters) -> Meter | None:
    """The meter the chart and top consumers follow: the one asked for, else the
    first of the tab with usage, else the first.

    Distinct counts (active users) come last by default: their daily series is
    the costliest read there is, and a partner page must stay fast; asking for
    the meter still charts it.
    """
    if not cards:
        return None
    if filters.meters:
        return next((c.meter for c in cards if c.meter.code == filters.meters[0]), cards[0].meter)
    ordered = sorted(cards, key=lambda c: c.meter.aggregation == Meter.Aggregation.UNIQUE_COUNT)
    used = [c for c in ordered if c.quantity]
    return (used or ordered)[0].meter


@dataclass
class StatementsPage:
    period: date
    own: list  # the tenant's own statements, newest first
    selected: object | None  # its statement of `period`
    customers: list  # statements of the tenants below it for `period`
    margin: object | None  # for sellers (partners and resellers)
    alerts: list
    pricing: StatementPricing | None = None  # the plans behind `selected`'s lines


def statements_overview(tenant: Tenant, period: date) -> StatementsPage:
    """Everything the statements page shows, read from billing's stored statements."""
    own = list(Statement.objects.filter(tenant=tenant).order_by("-period"))
    selected = next((s for s in own if s.period == period), None)
    customers = list(
        Statement.objects.filter(subtrees_q([tenant], "tenant__"), period=period)
        .exclude(tenant=tenant)
        .select_related("tenant")
    )
    margin = seller_margin(tenant, period) if is_seller(tenant) else None
    alerts = list(
        UsageAlert.objects.filter(subtrees_q([tenant], "tenant__"), period=period).select_related(
            "tenant", "plan_item__meter"
        )
    )
    pricing = statement_pricing(selected) if selected is not None else None
    return StatementsPage(period, own, selected, customers, margin, alerts, pricing)


def margin_meter_rows(margin) -> list[dict]:
    """The margin's rows by meter name (base fees first), then its total."""
    names = dict(Meter.objects.values_list("code", "name"))
    rows = [
        {"meter": "Base fees" if row.meter == BASE_FEE else names.get(row.meter, row.meter),
         "retail": row.retail, "wholesale": row.wholesale, "margin": row.margin}
        for row in margin.rows
    ]  # fmt: skip
    rows.append(
        {"meter": "Total", "retail": margin.retail, "wholesale": margin.wholesale,
         "margin": margin.margin}
    )  # fmt: skip
    return rows
