"""Report tables. The HTML table and its CSV are the same table object.

Quantity cells render with thousands separators for reading and export the
exact decimal string the usage API returns, so CSV and API agree to the digit.
"""

import json
from datetime import UTC
from decimal import Decimal

import django_tables2 as tables
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.urls import reverse
from django.utils.html import format_html

from billing.forms import tiers_text
from billing.money import round_money
from metering.models import Meter, UsageEvent
from reports.formatting import format_money, format_quantity

# Past this a page number is not a page of any table here (100 million rows), and
# its offset would overflow SQLite's integers.
MAX_PAGE = 1_000_000


def requested_page(request, table) -> int:
    raw = request.GET.get(table.prefixed_page_field, "")
    if raw.isascii() and raw.isdigit() and 1 <= int(raw[:8]) <= MAX_PAGE:
        return int(raw)
    return 1


def paginate(table, request, *, per_page: int, paginator_class=Paginator):
    """Show the table page the request asks for. A page that is not one of the
    table's (not a number, before the first or past the last) shows the first
    page, as a link from an older, longer list expects; the page size is the
    view's, never the request's."""
    try:
        table.paginate(paginator_class, per_page=per_page, page=requested_page(request, table))
    except (EmptyPage, PageNotAnInteger):
        table.paginate(paginator_class, per_page=per_page, page=1)
    return table


def shown_rows(table) -> tuple[int, int]:
    """The 1-based numbers of the first and last rows on the page shown ((0, 0) for
    none), without asking the paginator for a count: a LazyPaginator has none."""
    rows = len(table.page.object_list)
    if not rows:
        return 0, 0
    first = (table.page.number - 1) * table.paginator.per_page + 1
    return first, first + rows - 1


class QuantityColumn(tables.Column):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", {"td": {"class": "num"}, "th": {"class": "num"}})
        super().__init__(*args, **kwargs)

    def render(self, value):
        return format_quantity(value)

    def value(self, value):
        return "" if value is None else str(value)


def meter_header(meter: Meter) -> str:
    return f"{meter.name} ({meter.unit})"


def meter_column(meter: Meter) -> QuantityColumn:
    return QuantityColumn(verbose_name=meter_header(meter), accessor=f"quantities__{meter.code}")


class ChildUsageTable(tables.Table):
    """Children of a tenant with their usage per meter; each links to its own report.

    Meter columns follow the selected meters. A `charges` column appears when
    the rows carry charges (set `ChildUsage.charges`), so statements can add
    money without touching the page.
    """

    name = tables.Column(
        verbose_name="Child",
        linkify=("reports:tenant", {"slug": tables.A("slug")}),
        order_by=("own", "name"),
    )
    kind = tables.Column()
    charges = QuantityColumn(verbose_name="Charges")

    class Meta:
        attrs = {"class": "table", "id": "children-table"}
        empty_text = "No children."
        order_by = "name"

    def __init__(self, data, *, meters: list[Meter], **kwargs):
        columns = [(f"m_{m.code}", meter_column(m)) for m in meters]
        if not any(row.charges is not None for row in data):
            kwargs.setdefault("exclude", ("charges",))
        sequence = ["name", "kind", *(name for name, _ in columns), "charges"]
        super().__init__(data, extra_columns=columns, sequence=sequence, **kwargs)


class MeterTotalsTable(tables.Table):
    """The meter cards as a table (for CSV): total, previous period and change."""

    name = tables.Column(verbose_name="Meter", accessor="meter__name")
    code = tables.Column(verbose_name="Code", accessor="meter__code")
    unit = tables.Column(accessor="meter__unit")
    quantity = QuantityColumn(verbose_name="Total")
    previous = QuantityColumn(verbose_name="Previous period")
    change_percent = tables.Column(verbose_name="Change %", default="—")

    class Meta:
        attrs = {"class": "table", "id": "meter-totals"}
        orderable = False


class UsageChartTable(tables.Table):
    """The chart's numbers: one row per day, one column per stack, and the total."""

    day = tables.DateColumn(format="Y-m-d")
    total = QuantityColumn()

    class Meta:
        attrs = {"class": "table compact", "id": "chart-numbers"}
        orderable = False

    def __init__(self, series, **kwargs):
        columns = [
            (f"s{n}", QuantityColumn(verbose_name=s.label, accessor=f"values__{n}"))
            for n, s in enumerate(series.stacks)
        ]
        rows = [{"day": d, "values": values, "total": total} for d, values, total in series.rows()]
        sequence = ["day", *(name for name, _ in columns), "total"]
        super().__init__(rows, extra_columns=columns, sequence=sequence, **kwargs)


SOURCE_LABELS = dict(UsageEvent.Source.choices)


class UsageEventTable(tables.Table):
    """Detailed usage records, newest first.

    `export_values` writes the CSV: each shown column as a values() path and how
    its cell is written, read in one streamed query. Records run to millions and
    django-tables2 spends about a millisecond a row building cells.

    A tenant reads as its path below the page's tenant (`tenant_paths`: agents of
    the same name in two organizations differ); the CSV adds its slug, the key
    other systems know it by.
    """

    # The id breaks ties between events of the same instant, so pages and CSV agree.
    occurred_at = tables.DateTimeColumn(
        verbose_name="Time (UTC)", format="Y-m-d H:i:s", order_by=("occurred_at", "id")
    )
    # In tree order: each organization next to its agents, as the paths read.
    tenant = tables.Column(
        verbose_name="Tenant",
        accessor="tenant__name",
        linkify=("reports:tenant", {"slug": tables.A("tenant__slug")}),
        order_by=("tenant__tree_id", "tenant__lft", "occurred_at", "id"),
    )
    tenant_slug = tables.Column(verbose_name="Tenant slug", accessor="tenant__slug", visible=False)
    meter = tables.Column(verbose_name="Meter", accessor="meter__code")
    quantity = QuantityColumn()
    unit = tables.Column(verbose_name="Unit", accessor="meter__unit", orderable=False)
    source = tables.Column()
    dimension = tables.Column(default="")
    event_id = tables.Column(verbose_name="Event id")

    class Meta:
        model = UsageEvent
        fields = ("occurred_at", "source", "dimension")
        sequence = (
            "occurred_at",
            "tenant",
            "tenant_slug",
            "meter",
            "quantity",
            "unit",
            "source",
            "dimension",
            "...",
        )
        attrs = {"class": "table", "id": "records-table"}
        empty_text = "No usage records match these filters."
        order_by = "-occurred_at"

    export_values = {
        "occurred_at": ("occurred_at", lambda v: v.isoformat()),
        # "tenant": its path, set per table in __init__
        "tenant_slug": ("tenant__slug", str),
        "meter": ("meter__code", str),
        "quantity": ("quantity", str),
        "unit": ("meter__unit", str),
        "source": ("source", SOURCE_LABELS.get),
        "dimension": ("dimension", str),
        "event_id": ("event_id", str),
    }

    def __init__(self, data, *, tenant_paths: dict[int, str], **kwargs):
        super().__init__(data, **kwargs)
        self.tenant_paths = tenant_paths
        self.export_values = {
            **self.export_values,
            "tenant": ("tenant_id", lambda pk: tenant_paths.get(pk, "")),
        }

    def render_tenant(self, value, record):
        return self.tenant_paths.get(record.tenant_id, value)

    def render_unit(self, record):
        return record.meter.unit  # the unit code, as in the usage API and the meter cards

    def value_unit(self, record):
        return record.meter.unit

    def value_occurred_at(self, value):
        return value.isoformat()

    def render_event_id(self, value):
        return format_html("<code>{}</code>", value)

    def value_event_id(self, value):
        return value


class MoneyColumn(QuantityColumn):
    """Amounts in the row's currency (a statement's, a line's statement's, or the
    table's `currency`): grouped to the minor unit on the page, plain in the CSV."""

    def currency_of(self, record, table) -> str:
        statement = getattr(record, "statement", record)
        return getattr(statement, "currency", None) or getattr(table, "currency", None) or "USD"

    def render(self, value, record, table):
        return format_money(value, self.currency_of(record, table))

    def value(self, value, record, table):
        if value is None:
            return ""
        return str(round_money(value, self.currency_of(record, table)))


def statement_url(record) -> str:
    """The statement on its tenant's statements page (`record`: django-tables2 passes
    arguments by name)."""
    slug = record.tenant.slug
    return reverse("reports:statements", args=[slug]) + f"?period={record.period:%Y-%m}"


class StatementTable(tables.Table):
    """Statements; each tenant and each month links to that statement."""

    tenant = tables.Column(accessor="tenant__name", verbose_name="Tenant", linkify=statement_url)
    period = tables.Column(linkify=statement_url)  # a DateColumn's template drops links
    status = tables.Column()
    currency = tables.Column()
    base_fee = MoneyColumn(verbose_name="Base fee")
    usage_amount = MoneyColumn(verbose_name="Usage")
    total = MoneyColumn()

    class Meta:
        attrs = {"class": "table", "id": "statements-table"}
        empty_text = "No statements."
        order_by = ("tenant",)

    def render_period(self, value):
        return f"{value:%Y-%m}"

    def value_period(self, value):
        return f"{value:%Y-%m}"  # the month, as on the page and in ?period=


def applied_tiers_text(tiers, currency: str) -> str:
    """The tiers that priced a line, so a customer can check the arithmetic:
    "0–100: 100 × 0.1 = 10.00; 100–∞: 50 × 0.08 + 5.00 flat = 9.00"."""
    parts = []
    for tier in tiers or ():
        bound = "∞" if tier.get("to") is None else format_quantity(tier["to"])
        fee = Decimal(tier.get("flat_fee") or 0)
        flat = f" + {format_money(fee, currency)} flat" if fee else ""
        amount = format_money(tier["amount"], currency)
        parts.append(
            f"{format_quantity(tier['from'])}–{bound}: {format_quantity(tier['units'])} × "
            f"{format_quantity(tier['unit_price'])}{flat} = {amount}"
        )
    return "; ".join(parts)


class AppliedTiersColumn(tables.Column):
    """On the page in words; in the CSV as the API gives them (JSON, exact)."""

    def render(self, value, record):
        return applied_tiers_text(value, record.statement.currency)

    def value(self, value, record):
        return json.dumps(value or [])


class PlanTiersColumn(tables.Column):
    """The plan item's tiers, all of them, as they stood when the line was rated: on
    the page in words, in the CSV as the plans API gives them."""

    def item(self, record, table):
        return table.pricing.item_of(record) if table.pricing else None

    def render(self, record, table):
        item = self.item(record, table)
        return tiers_text(item.tiers, record.statement.currency) if item and item.tiers else ""

    def value(self, record, table):
        item = self.item(record, table)
        return json.dumps(item.tiers) if item and item.tiers else ""


class StatementLineTable(tables.Table):
    """A statement's lines; `pricing` (billing.selectors.StatementPricing) names the
    plans and gives the tiers each line's plan item had."""

    meter = tables.Column(accessor="meter__name")
    dimension = tables.Column(
        verbose_name="Dimension",
        default="",
        attrs={"th": {"title": "Empty: every value no other line of the meter names."}},
    )
    plan = tables.Column(accessor="plan_code", verbose_name="Plan")
    charge_model = tables.Column(verbose_name="Charge model")

    def __init__(self, *args, pricing=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.pricing = pricing

    def render_plan(self, value):
        return self.pricing.plan_label(value) if self.pricing else value

    def value_plan(self, value):
        return self.render_plan(value)

    def render_charge_model(self, record):
        return record.charge_model  # the short name, as in the API and the plan

    starts_on = tables.DateColumn(verbose_name="From", format="Y-m-d")
    ends_on = tables.DateColumn(verbose_name="To", format="Y-m-d")
    used = QuantityColumn()
    included = QuantityColumn()
    overage = QuantityColumn()
    unit_price = QuantityColumn(verbose_name="Unit price")
    plan_tiers = PlanTiersColumn(verbose_name="Plan tiers", empty_values=(), orderable=False)
    tiers = AppliedTiersColumn(verbose_name="Tiers applied", default="")
    amount = MoneyColumn()

    class Meta:
        attrs = {"class": "table", "id": "lines-table"}
        empty_text = "No usage lines: the plan has no metered items."
        orderable = False


class MarginTable(tables.Table):
    """A seller's margin per meter (base fees first) and its total, in the wholesale currency."""

    def __init__(self, *args, currency: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.currency = currency

    meter = tables.Column(verbose_name="Meter")
    retail = MoneyColumn(verbose_name="Retail (charged to customers)")
    wholesale = MoneyColumn(verbose_name="Wholesale (owed upstream)")
    margin = MoneyColumn()

    class Meta:
        attrs = {"class": "table", "id": "margin-table"}
        empty_text = "No statements for this month."
        orderable = False


TOTALLED = {"td": {"class": "num"}, "th": {"class": "num"}, "tf": {"class": "num"}}


def margin_total(name: str):
    """A footer showing the margin's total of `name`, which the customer rows add up to
    (with no customer there is nothing to add up: no total)."""

    def footer(table):
        if not table.margin.customers:
            return ""
        return format_money(getattr(table.margin, name), table.currency)

    return footer


class MarginCustomerTable(tables.Table):
    """A seller's margin per customer: what it bills the customer, the wholesale
    attributed to it, and the difference. Totals are a footer, so the CSV holds
    exactly one row per customer."""

    customer = tables.Column(
        accessor="tenant__name",
        verbose_name="Customer",
        linkify=lambda record, table: (
            reverse("reports:statements", args=[record.tenant.slug])
            + f"?period={table.margin.period:%Y-%m}"
        ),
        footer=lambda table: "Total" if table.margin.customers else "",
    )
    slug = tables.Column(accessor="tenant__slug", verbose_name="Slug")
    retail = MoneyColumn(verbose_name="Retail", footer=margin_total("retail"), attrs=TOTALLED)
    wholesale_share = MoneyColumn(
        verbose_name="Wholesale share", footer=margin_total("wholesale"), attrs=TOTALLED
    )
    margin = MoneyColumn(verbose_name="Margin", footer=margin_total("margin"), attrs=TOTALLED)

    class Meta:
        attrs = {"class": "table", "id": "margin-customers-table"}
        empty_text = "No customer statements in this currency this month."
        order_by = ("customer",)

    def __init__(self, margin, **kwargs):
        super().__init__(margin.customers, **kwargs)
        self.margin = margin
        self.currency = margin.currency


class UsageAlertTable(tables.Table):
    raised_at = tables.DateTimeColumn(verbose_name="Raised", format="Y-m-d H:i")
    tenant = tables.Column(accessor="tenant__name")
    meter = tables.Column(accessor="plan_item__meter__name")
    percent = tables.Column(verbose_name="Threshold (%)")
    usage = QuantityColumn()
    base = QuantityColumn(verbose_name="Limit or included")
    policy = tables.Column(accessor="plan_item__overage_policy", verbose_name="Policy")

    class Meta:
        attrs = {"class": "table", "id": "alerts-table"}
        empty_text = "No thresholds crossed this month."
        orderable = False

    def value_raised_at(self, value):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # ISO 8601, to the second
