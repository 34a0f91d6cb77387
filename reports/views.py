"""Portal pages. Views stay thin: scope, parse the filters, select, render."""

from chartjs.colors import next_color
from chartjs.views.lines import BaseLineChartView
from django.contrib.auth.decorators import login_required
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django_tables2 import RequestConfig
from django_tables2.paginators import LazyPaginator

from accounts.models import Tenant
from accounts.selectors import top_tenants, visible_ancestors
from billing.documents import statement_pdf_response
from billing.models import Statement
from billing.periods import parse_month, requested_month
from metering.models import Meter, UsageEvent
from metering.records import query_of
from metering.stores import event_store, uses_clickhouse
from reports.exports import queryset_table_csv, table_csv
from reports.filtersets import RecordsFilterSet
from reports.forms import CATEGORIES, ReportQueryForm
from reports.selectors import (
    daily_series,
    in_catalog_order,
    margin_meter_rows,
    statements_overview,
    tenant_paths,
    tenant_report,
)
from reports.store_records import StoreTableData
from reports.tables import (
    ChildUsageTable,
    MarginCustomerTable,
    MarginTable,
    MeterTotalsTable,
    StatementLineTable,
    StatementTable,
    UsageAlertTable,
    UsageChartTable,
    UsageEventTable,
    paginate,
    shown_rows,
)

CHILDREN_PER_PAGE = 50
RECORDS_PER_PAGE = 100
# The portal's accent colors, distinct enough side by side in a stacked bar.
SERIES_COLORS = [(31, 111, 235), (47, 133, 90), (183, 121, 31), (128, 90, 213), (197, 48, 48)]
REST_COLOR = (170, 178, 189)


@login_required
def home(request):
    """Send the user to their one top tenant, or let them choose among several."""
    tenants = top_tenants(request.user)
    if len(tenants) == 1:
        return redirect("reports:tenant", slug=tenants[0].slug)
    return render(request, "reports/choose_tenant.html", {"tenants": tenants})


def visible_tenant_or_404(request, slug: str) -> Tenant:
    return get_object_or_404(Tenant.objects.visible_to(request.user), slug=slug)


def report_tables(report, request) -> dict:
    """The page's tables by the name the CSV download uses, sorted as the request asks."""
    tables = {
        "children": ChildUsageTable(report.children, meters=report.meters, prefix="c-"),
        "meters": MeterTotalsTable(report.cards),
    }
    if report.series:
        tables["chart"] = UsageChartTable(report.series)
    RequestConfig(request, paginate=False).configure(tables["children"])
    return tables


@login_required
def tenant_report_page(request, slug):
    tenant = visible_tenant_or_404(request, slug)
    form = ReportQueryForm(request.GET, tenant)
    context = {
        "tenant": tenant,
        "ancestors": visible_ancestors(request.user, tenant),
        "form": form,
        "categories": CATEGORIES,
    }
    if not form.is_valid():
        return render(request, "reports/tenant.html", context, status=400)
    report = tenant_report(tenant, form.report_period, form.filters(), form.cleaned_data["stack"])
    tables = report_tables(report, request)
    paginate(tables["children"], request, per_page=CHILDREN_PER_PAGE)
    context.update(report=report, tables=tables, category=form.category)
    return render(request, "reports/tenant.html", context)


@login_required
def tenant_report_csv(request, slug):
    """One of the page's tables as CSV: `?table=children|meters|chart` plus the page's filters."""
    tenant = visible_tenant_or_404(request, slug)
    form = ReportQueryForm(request.GET, tenant)
    if not form.is_valid():
        return HttpResponseBadRequest(filter_errors(form), content_type="text/plain")
    report = tenant_report(tenant, form.report_period, form.filters(), form.cleaned_data["stack"])
    name = request.GET.get("table", "children")
    table = report_tables(report, request).get(name)
    if table is None:
        raise Http404("No such table.")
    period = form.report_period
    return table_csv(table, f"{name}-{tenant.slug}-{period.start}-{period.end}.csv")


class ReportChartView(LoginRequiredMixin, BaseLineChartView):
    """Daily usage of one meter, stacked, as Chart.js data (labels and datasets only)."""

    def get(self, request, *args, **kwargs):
        tenant = visible_tenant_or_404(request, kwargs["slug"])
        form = ReportQueryForm(request.GET, tenant)
        if not form.is_valid():
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        meter = self.chart_meter(form)
        self.series = daily_series(
            tenant, form.report_period, form.filters(), meter, form.cleaned_data["stack"]
        )
        return super().get(request, *args, **kwargs)

    def chart_meter(self, form) -> Meter:
        codes = form.cleaned_data["meter"]
        meters = Meter.objects.filter(category=form.category)
        if codes:
            meters = meters.filter(code__in=codes[:1])
        meter = next(iter(in_catalog_order(meters)), None)
        if meter is None:
            raise Http404("No meter to chart.")
        return meter

    def get_context_data(self, **kwargs):
        # django-chartjs would also serialize the view and URL kwargs.
        unit = self.series.unit
        return {
            "labels": self.get_labels(),
            "datasets": self.get_datasets(),
            "meter": self.series.meter.code,
            "unit": self.series.meter.unit,
            # The data is in this unit: stored value = value × factor.
            "display": {
                "symbol": unit.symbol,
                "name": unit.name,
                "factor": str(unit.factor),
                "places": unit.places,
            },
        }

    def get_colors(self):
        return next_color(SERIES_COLORS)

    def get_dataset_options(self, index, color):
        if self.series.stacks[index].rest:
            color = REST_COLOR  # "Other" recedes behind the named stacks
        red, green, blue = color
        return {
            "backgroundColor": f"rgba({red}, {green}, {blue}, 0.8)",
            "borderColor": f"rgb({red}, {green}, {blue})",
            "borderWidth": 1,
        }

    def get_labels(self):
        return [d.isoformat() for d in self.series.days]

    def get_providers(self):
        return [s.label for s in self.series.stacks]

    def get_data(self):
        # Chart.js needs numbers: Decimal becomes float here, at the edge, and nowhere else.
        factor = self.series.unit.factor
        return [[float(v / factor) for v in s.values] for s in self.series.stacks]


@login_required
def records_page(request, slug):
    tenant = visible_tenant_or_404(request, slug)
    records = filtered_records(request, tenant)
    table = UsageEventTable(records_data(request, records), tenant_paths=tenant_paths(tenant))
    RequestConfig(request, paginate=False).configure(table)
    paginate(table, request, per_page=RECORDS_PER_PAGE, paginator_class=LazyPaginator)
    context = {
        "tenant": tenant,
        "ancestors": visible_ancestors(request.user, tenant),
        "filter": records,
        "table": table,
        "shown": shown_rows(table),
        "total": records_total(table, records),
    }
    return render(request, "reports/records.html", context, status=400 if records.errors else 200)


@login_required
def records_csv(request, slug):
    tenant = visible_tenant_or_404(request, slug)
    records = filtered_records(request, tenant)
    if records.errors:
        return HttpResponseBadRequest(filter_errors(records.form), content_type="text/plain")
    table = UsageEventTable(records_data(request, records), tenant_paths=tenant_paths(tenant))
    RequestConfig(request, paginate=False).configure(table)
    return queryset_table_csv(table, f"records-{tenant.slug}.csv")


def records_data(request, records: RecordsFilterSet):
    """The records table's data: the filtered queryset, or, with events in ClickHouse,
    the same records read from there a page at a time."""
    if not uses_clickhouse() or not records.is_valid():
        return records.qs
    query = query_of(records, request.GET.get("end", ""), request.user)
    return StoreTableData(event_store(), query)


def records_total(table, records: RecordsFilterSet) -> int | None:
    if isinstance(table.data, StoreTableData):
        return len(table.data)
    return records.total()


def filter_errors(form) -> str:
    return "\n".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())


def filtered_records(request, tenant: Tenant) -> RecordsFilterSet:
    """The events filterset of the records API, pinned to this tenant's subtree."""
    data = request.GET.copy()
    data["tenant"] = tenant.slug
    events = (
        UsageEvent.objects.visible_to(request.user).within(tenant).select_related("tenant", "meter")
    )
    return RecordsFilterSet(data, queryset=events, request=request)


def statement_tables(page) -> dict:
    """The statements page's tables by the name the CSV download uses."""
    tables = {
        "statements": StatementTable(page.own, exclude=("tenant",)),
        "customers": StatementTable(page.customers),
        "alerts": UsageAlertTable(page.alerts),
    }
    if page.selected is not None:
        lines = page.selected.lines.select_related("meter")
        tables["lines"] = StatementLineTable(lines, pricing=page.pricing)
    if page.margin is not None:
        margin = page.margin
        tables["margin"] = MarginTable(margin_meter_rows(margin), currency=margin.currency)
        tables["margin_customers"] = MarginCustomerTable(margin, prefix="mc-")
    return tables


def statement_period(request):
    """`?period=YYYY-MM`, default this month; None when it is not a month."""
    try:
        return requested_month(request.GET.get("period"), timezone.now().date())
    except ValueError:
        return None


def bad_period():
    return HttpResponseBadRequest("period: use YYYY-MM.", content_type="text/plain")


@login_required
def statements_page(request, slug):
    tenant = visible_tenant_or_404(request, slug)
    period = statement_period(request)
    if period is None:
        return bad_period()
    page = statements_overview(tenant, period)
    tables = statement_tables(page)
    for table in tables.values():
        RequestConfig(request, paginate=False).configure(table)
    context = {
        "tenant": tenant,
        "ancestors": visible_ancestors(request.user, tenant),
        "page": page,
        "tables": tables,
        "period_value": f"{period:%Y-%m}",
    }
    return render(request, "reports/statements.html", context)


@login_required
def statements_csv(request, slug):
    """One of the statements page's tables:
    `?table=statements|lines|customers|margin|margin_customers|alerts`."""
    tenant = visible_tenant_or_404(request, slug)
    period = statement_period(request)
    if period is None:
        return bad_period()
    name = request.GET.get("table", "statements")
    table = statement_tables(statements_overview(tenant, period)).get(name)
    if table is None:
        raise Http404("No such table.")
    RequestConfig(request, paginate=False).configure(table)
    return table_csv(table, f"{name}-{tenant.slug}-{period:%Y-%m}.csv")


@login_required
def statement_pdf_download(request, slug, period):
    """The tenant's statement of the month as a PDF; 404 when it has none."""
    tenant = visible_tenant_or_404(request, slug)
    try:
        month = parse_month(period)
    except ValueError:
        raise Http404("No such month.") from None
    statement = get_object_or_404(Statement.objects.select_related("tenant"), tenant=tenant,
                                  period=month)  # fmt: skip
    return statement_pdf_response(statement)
