"""Report tables. The HTML table and its CSV are the same table object.

Quantity cells render in a unit people read (see `reports.formatting`), with the
exact value in their tooltip, and export the exact decimal string the usage API
returns, so CSV and API agree to the digit. Money shows with its currency.
"""

import json
from decimal import Decimal

import django_tables2 as tables
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.html import format_html

from billing.forms import tiers_text
from billing.money import format_money, money_text, round_money
from metering.models import Meter, UsageEvent
from reports.formatting import (
    DisplayUnit,
    column_unit,
    exact_text,
    format_in,
    format_quantity,
    stored_unit,
)


def zone_header(label: str):
    """ "Time (Europe/Berlin)": the label and the zone the page shows times in (the
    viewer's, see `usage_portal.middleware`), named when the header is read."""
    return lazy(lambda: f"{label} ({timezone.get_current_timezone_name()})", str)()


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
    """A quantity: on the page to a unit's decimal places with the exact value as its
    tooltip, in the CSV exact.

    The unit is the column's (`unit`: one meter per column, which its header names)
    or, in a column mixing meters, the row's meter's (`unit_from`, a path to the unit
    code, read as stored); with neither the exact value shows. `export_header` is the
    CSV's header where the page's names a larger unit than the stored one.
    """

    def __init__(self, *args, unit=None, unit_from=None, export_header=None, **kwargs):
        kwargs.setdefault("attrs", {"td": {"class": "num"}, "th": {"class": "num"}})
        super().__init__(*args, **kwargs)
        self.unit: DisplayUnit | None = unit
        self.unit_from = tables.A(unit_from) if unit_from else None
        self.export_header = export_header

    def render(self, value, record):
        unit = self.unit
        if unit is None and self.unit_from is not None:
            unit = stored_unit(self.unit_from.resolve(record, quiet=True))
        if unit is None:
            return format_quantity(value)
        return format_html(
            '<span title="{}">{}</span>', exact_text(value, unit.stored), format_in(value, unit)
        )

    def value(self, value):
        return "" if value is None else str(value)


def meter_header(meter: Meter) -> str:
    return f"{meter.name} ({meter.unit})"


def meter_column(meter: Meter, values=()) -> QuantityColumn:
    """A column of one meter's quantities, in the unit its largest value reads in."""
    unit = column_unit(meter.unit, values)
    return QuantityColumn(
        # The unit keeps its case where headers are set in capitals ("h", not "H").
        verbose_name=format_html('{} <span class="unit">({})</span>', meter.name, unit.symbol),
        export_header=meter_header(meter),
        accessor=f"quantities__{meter.code}",
        unit=unit,
    )


class ChargeColumn(tables.Column):
    """A `Charge`: its amount with its currency on the page, the amount in the CSV
    (rounded to the currency's minor unit; the currency has a column of its own)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("attrs", {"td": {"class": "num"}, "th": {"class": "num"}})
        super().__init__(*args, **kwargs)

    def render(self, value):
        return money_text(value.amount, value.currency)

    def value(self, value):
        return str(round_money(value.amount, value.currency)) if value else ""


def charges_columns(data) -> list[tuple[str, tables.Column]]:
    """The children's statement totals of the month, when any child has one."""
    charged = [row.charges for row in data if row.charges is not None]
    if not charged:
        return []
    period = charged[0].period
    draft = "" if all(c.final for c in charged) else "; a draft (the live estimate) until it closes"
    header = f"Charges, {period:%b %Y} statement"
    explained = (
        f"Each child's statement total for {period:%B %Y}: base fee, usage and any true-up{draft}."
    )
    amount = ChargeColumn(
        verbose_name=header,
        order_by="charges__amount",
        attrs={"td": {"class": "num"}, "th": {"class": "num", "title": explained}},
    )
    currency = tables.Column(
        verbose_name="Currency",
        accessor="charges__currency",
        default="",
        visible=False,
        orderable=False,
    )
    return [("charges", amount), ("charges_currency", currency)]


class ChildUsageTable(tables.Table):
    """Children of a tenant with their usage per meter; each links to its own report.

    Meter columns follow the selected meters. A `charges` column (and, in the CSV
    only, its currency) appears when the rows carry charges (set `ChildUsage.charges`),
    so statements can add money without touching the page.
    """

    name = tables.Column(
        verbose_name="Child",
        linkify=("reports:tenant", {"slug": tables.A("slug")}),
        order_by=("own", "name"),
    )
    kind = tables.Column()

    class Meta:
        attrs = {"class": "table", "id": "children-table"}
        empty_text = "No children."
        order_by = "name"

    def __init__(self, data, *, meters: list[Meter], **kwargs):
        columns = [
            (f"m_{m.code}", meter_column(m, [row.quantities.get(m.code) for row in data]))
            for m in meters
        ]
        columns += charges_columns(data)
        sequence = ["name", "kind", *(name for name, _ in columns)]
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

    class Meta:
        attrs = {"class": "table compact", "id": "chart-numbers"}
        orderable = False

    def __init__(self, series, **kwargs):
        unit = series.unit
        columns = [
            (f"s{n}", QuantityColumn(verbose_name=s.label, accessor=f"values__{n}", unit=unit))
            for n, s in enumerate(series.stacks)
        ]
        columns.append(("total", QuantityColumn(unit=unit)))
        rows = [{"day": d, "values": values, "total": total} for d, values, total in series.rows()]
        sequence = ["day", *(name for name, _ in columns)]
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
        verbose_name=zone_header("Time"), format="Y-m-d H:i:s", order_by=("occurred_at", "id")
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
    quantity = QuantityColumn(unit_from="meter__unit")
    unit = tables.Column(verbose_name="Unit", accessor="meter__unit", orderable=False)
    source = tables.Column()
    dimension = tables.Column(default="")
    event_id = tables.Column(verbose_name="Event id")
    received_at = tables.DateTimeColumn(
        verbose_name=zone_header("Received"), format="Y-m-d H:i:s", order_by=("received_at", "id")
    )

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

    # Times are added per table (`__init__`): written in the zone the page shows.
    export_values = {
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
        # The CSV streams after the view returns: its zone is fixed now, with the header's.
        self.zone = timezone.get_current_timezone()
        self.export_values = {
            **self.export_values,
            "tenant": ("tenant_id", lambda pk: tenant_paths.get(pk, "")),
            "occurred_at": ("occurred_at", self.local_iso),
            "received_at": ("received_at", self.local_iso),
        }

    def local_iso(self, value) -> str:
        """RFC 3339 in the page's zone, its offset written: exact whatever the zone."""
        return value.astimezone(self.zone).isoformat()

    def render_tenant(self, value, record):
        return self.tenant_paths.get(record.tenant_id, value)

    def render_unit(self, record):
        return record.meter.unit  # the unit code, as in the usage API and the meter cards

    def value_unit(self, record):
        return record.meter.unit

    def value_occurred_at(self, value):
        return self.local_iso(value)

    def value_received_at(self, value):
        return self.local_iso(value)

    def render_source(self, value):
        # A model row gives its label already; a row read from the event store its code.
        return SOURCE_LABELS.get(value, value)

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
        return money_text(value, self.currency_of(record, table))

    def value(self, value, record, table):
        if value is None:
            return ""
        return str(round_money(value, self.currency_of(record, table)))


def statement_url(record) -> str:
    """The statement on its tenant's statements page (`record`: django-tables2 passes
    arguments by name)."""
    slug = record.tenant.slug
    return reverse("reports:statements", args=[slug]) + f"?period={record.period:%Y-%m}"


def statement_pdf_url(record) -> str:
    return reverse("reports:statement_pdf", args=[record.tenant.slug, f"{record.period:%Y-%m}"])


class StatementTable(tables.Table):
    """Statements; each tenant and each month links to that statement, and each
    statement to its PDF (on the page only)."""

    tenant = tables.Column(accessor="tenant__name", verbose_name="Tenant", linkify=statement_url)
    period = tables.Column(linkify=statement_url)  # a DateColumn's template drops links
    status = tables.Column()
    currency = tables.Column()
    base_fee = MoneyColumn(verbose_name="Base fee")
    usage_amount = MoneyColumn(verbose_name="Usage")
    total = MoneyColumn()
    number = tables.Column(verbose_name="Number", default="Draft")
    document = tables.Column(
        verbose_name="PDF", empty_values=(), orderable=False, exclude_from_export=True
    )

    class Meta:
        attrs = {"class": "table", "id": "statements-table"}
        empty_text = "No statements."
        order_by = ("tenant",)

    def render_period(self, value):
        return f"{value:%Y-%m}"

    def value_period(self, value):
        return f"{value:%Y-%m}"  # the month, as on the page and in ?period=

    def render_document(self, record):
        return format_html('<a href="{}" download>Download PDF</a>', statement_pdf_url(record))


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
    used = QuantityColumn(unit_from="meter__unit")
    included = QuantityColumn(unit_from="meter__unit")
    overage = QuantityColumn(unit_from="meter__unit")
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
        return money_text(getattr(table.margin, name), table.currency)

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
    raised_at = tables.DateTimeColumn(verbose_name=zone_header("Raised"), format="Y-m-d H:i")
    tenant = tables.Column(accessor="tenant__name")
    meter = tables.Column(accessor="plan_item__meter__name")
    percent = tables.Column(verbose_name="Threshold (%)")
    usage = QuantityColumn(unit_from="plan_item__meter__unit")
    base = QuantityColumn(verbose_name="Limit or included", unit_from="plan_item__meter__unit")
    policy = tables.Column(accessor="plan_item__overage_policy", verbose_name="Policy")

    class Meta:
        attrs = {"class": "table", "id": "alerts-table"}
        empty_text = "No thresholds crossed this month."
        orderable = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.zone = timezone.get_current_timezone()  # for the CSV, which streams later

    def value_raised_at(self, value):
        # ISO 8601 to the second, in the page's zone with its offset
        return value.astimezone(self.zone).isoformat(timespec="seconds")
