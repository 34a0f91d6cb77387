import json
from datetime import date

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.viewsets import ScopedEditViewSet, ScopedReadOnlyModelViewSet
from accounts.models import Tenant, subtrees_q
from accounts.scoping import visible_tenant_or_404
from accounts.services import user_can_manage
from billing.api.serializers import (
    EntitlementSerializer,
    MarginSerializer,
    PlanSerializer,
    StatementSerializer,
    SubscriptionSerializer,
    UsageAlertSerializer,
)
from billing.documents import statement_pdf_response
from billing.entitlements import entitlement
from billing.filtersets import PlanFilterSet, SubscriptionFilterSet
from billing.forms import UsageQueryForm
from billing.margin import is_seller, seller_margin
from billing.models import Plan, Statement, Subscription, UsageAlert
from billing.periods import requested_month
from billing.plans import save_plan, subscribe
from billing.selectors import can_sell
from billing.usage import usage_summary
from metering.api.views import ERROR_BODY
from metering.models import Meter
from utilities.csv import CSVRenderer, streaming_csv

USAGE_COLUMNS = ["meter", "category", "unit", "quantity", "event_count"]


def group_label(key) -> str | None:
    if isinstance(key, Tenant):
        return key.slug
    if hasattr(key, "isoformat"):
        return key.isoformat()
    return key


def usage_result(row, group_by: str) -> dict:
    result = {
        "meter": row.meter.code,
        "category": row.meter.category,
        "unit": row.meter.unit,
        "quantity": str(row.quantity),
        "event_count": row.event_count,
    }
    if group_by != "meter":
        result[group_by] = group_label(row.key)
        if group_by == "child":
            result["child_name"] = row.key.name
            result["child_kind"] = row.key.kind
    return result


def csv_columns(group_by: str) -> list[str]:
    if group_by == "meter":
        return USAGE_COLUMNS
    if group_by == "child":
        return ["child", "child_name", "child_kind", *USAGE_COLUMNS]
    return [group_by, *USAGE_COLUMNS]


class UsageView(APIView):
    """A tenant subtree's usage summary; `?format=csv` gives the same rows as CSV."""

    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str, required=True),
            OpenApiParameter("start", str, description="YYYY-MM-DD, default 1st of month"),
            OpenApiParameter("end", str, description="YYYY-MM-DD inclusive, default today"),
            OpenApiParameter(
                "group_by", str, enum=["meter", "day", "child", "source", "dimension"]
            ),
            OpenApiParameter("meter", str, description="meter code(s), comma-separated"),
            OpenApiParameter("category", str),
            OpenApiParameter("source", str, enum=["api", "user", "service"]),
            OpenApiParameter("dimension", str),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses=inline_serializer(
            "UsageSummary",
            {
                "tenant": serializers.CharField(),
                "start": serializers.DateField(),
                "end": serializers.DateField(),
                "group_by": serializers.CharField(),
                "as_of": serializers.DateTimeField(),
                "last_rollup": serializers.DateTimeField(allow_null=True),
                "results": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    def get(self, request):
        form = UsageQueryForm(request.query_params)
        if not form.is_valid():
            raise ValidationError(
                {
                    field: [e["message"] for e in errors]
                    for field, errors in form.errors.get_json_data().items()
                }
            )
        query = form.cleaned_data
        tenant = visible_tenant_or_404(request.user, query["tenant"])
        summary = usage_summary(
            tenant, query["start"], query["end"], query["group_by"], form.filters()
        )
        results = [usage_result(row, summary.group_by) for row in summary.rows]
        if request.accepted_renderer.format == "csv":
            columns = csv_columns(summary.group_by)
            rows = ([r.get(c) for c in columns] for r in results)
            name = f"usage-{tenant.slug}-{summary.start}-{summary.end}.csv"
            return streaming_csv(columns, rows, name)
        return Response(
            {
                "tenant": tenant.slug,
                "start": summary.start,
                "end": summary.end,
                "group_by": summary.group_by,
                "as_of": summary.as_of,
                "last_rollup": summary.last_rollup.finished_at if summary.last_rollup else None,
                "results": results,
            }
        )


class PlanViewSet(ScopedEditViewSet):
    """Plans with their items inline; written by the managers of the owning tenant
    (platform plans: superusers)."""

    queryset = Plan.objects.select_related("owner", "customer").prefetch_related("items__meter")
    serializer_class = PlanSerializer
    filterset_class = PlanFilterSet
    lookup_field = "code"
    lookup_value_regex = "[-a-zA-Z0-9_]+"

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        items = data.pop("items", [])
        require_manager(self.request.user, data.get("owner"))
        serializer.instance = save_plan(plan=Plan(**data), items=items)

    def perform_update(self, serializer):
        plan = serializer.instance
        require_manager(self.request.user, plan.owner)
        data = dict(serializer.validated_data)
        items = data.pop("items", None)
        for name, value in data.items():
            setattr(plan, name, value)
        serializer.instance = save_plan(plan=plan, items=items)


def require_manager(user, owner) -> None:
    if not user_can_manage(user, owner):
        raise PermissionDenied(
            "Only managers of the owning tenant change its plans"
            if owner is not None
            else "Only platform operators change platform plans."
        )


class SubscriptionViewSet(ScopedEditViewSet):
    """Subscriptions in the caller's subtrees. Starting one while an open one runs
    ends the running one the day before (a mid-month change, prorated by day);
    PATCH can only set `ends_on`."""

    queryset = Subscription.objects.select_related("tenant", "plan")
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilterSet

    def perform_create(self, serializer):
        data = serializer.validated_data
        require_seller(self.request.user, data["plan"])
        serializer.instance = subscribe(**data)

    def perform_update(self, serializer):
        subscription = serializer.instance
        require_seller(self.request.user, subscription.plan)
        subscription.ends_on = serializer.validated_data.get("ends_on", subscription.ends_on)
        subscription.full_clean()
        subscription.save()


def require_seller(user, plan) -> None:
    if not can_sell(user, plan):
        raise PermissionDenied("Subscriptions to this plan are made by the managers of its owner.")


class PeriodMixin:
    def period(self) -> date:
        value = self.request.query_params.get("period")
        try:
            return requested_month(value, timezone.now().date())
        except ValueError as error:
            raise ValidationError({"period": [str(error)]}) from None

    def visible_tenant(self, required: bool = True):
        slug = self.request.query_params.get("tenant")
        if not slug:
            if required:
                raise ValidationError({"tenant": ["This parameter is required."]})
            return None
        return visible_tenant_or_404(self.request.user, slug)


class PDFRenderer(BaseRenderer):
    """Lets a client ask for application/pdf; the view writes the PDF itself, so
    what reaches here is an error body."""

    media_type = "application/pdf"
    format = "pdf"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()


STATEMENT_CSV = [
    "tenant", "period", "status", "currency", "base_fee", "total",
    "meter", "plan", "starts_on", "ends_on", "used", "included", "overage", "unit_price", "amount",
]  # fmt: skip


@extend_schema(
    parameters=[
        OpenApiParameter("tenant", str, description="Tenant slug (its own statements)"),
        OpenApiParameter("within", str, description="Statements of every tenant in this subtree"),
        OpenApiParameter("period", str, description="YYYY-MM"),
        OpenApiParameter("status", str, enum=["draft", "final"]),
        OpenApiParameter("format", str, enum=["json", "csv"]),
    ]
)
class StatementViewSet(PeriodMixin, ScopedReadOnlyModelViewSet):
    """Statements: drafts are the live estimate (as of `as_of`), finals never change."""

    queryset = Statement.objects.select_related("tenant").prefetch_related("lines__meter")
    serializer_class = StatementSerializer
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]

    def get_queryset(self):
        statements = super().get_queryset()
        params = self.request.query_params
        if params.get("tenant"):
            statements = statements.filter(tenant=self.visible_tenant())
        if params.get("within"):
            root = visible_tenant_or_404(self.request.user, params["within"])
            statements = statements.filter(subtrees_q([root], "tenant__"))
        if params.get("period"):
            statements = statements.filter(period=self.period())
        if params.get("status"):
            statements = statements.filter(status=params["status"])
        return statements

    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return streaming_csv(
                STATEMENT_CSV, statement_csv_rows(self.get_queryset()), "statements.csv"
            )
        return super().list(request, *args, **kwargs)

    @extend_schema(
        # The list's filters mean nothing for one statement's document.
        parameters=[
            OpenApiParameter(name, exclude=True)
            for name in ("tenant", "within", "period", "status", "format")
        ],
        responses={
            (200, "application/pdf"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="The statement as a PDF in its issuer's brand; a draft is "
                "watermarked DRAFT and has no number yet.",
            ),
            404: OpenApiResponse(description="No such statement among those you may see."),
        },
    )
    @action(detail=True, url_path="pdf", renderer_classes=[JSONRenderer, PDFRenderer])
    def pdf(self, request, pk=None):
        """The statement document (PDF)."""
        statement = self.get_object()
        return statement_pdf_response(statement)


def statement_csv_rows(statements):
    for statement in statements:
        head = [
            statement.tenant.slug, f"{statement.period:%Y-%m}", statement.status,
            statement.currency, statement.base_fee, statement.total,
        ]  # fmt: skip
        for line in statement.lines.all():
            yield [
                *head, line.meter.code, line.plan_code, line.starts_on, line.ends_on, line.used,
                line.included, line.overage, line.unit_price, line.amount,
            ]  # fmt: skip


class MarginView(PeriodMixin, APIView):
    """A seller's margin: retail billed to its customers on its own plans, wholesale
    it owes upstream, per meter and per customer. Superusers omit `tenant` for the
    platform's own margin (its plans are those without an owner)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "tenant",
                str,
                description="A partner's or reseller's slug; required, except for superusers, "
                "who omit it for the platform's margin.",
            ),
            OpenApiParameter("period", str, description="YYYY-MM, default this month"),
        ],
        responses={
            200: MarginSerializer,
            400: OpenApiResponse(
                ERROR_BODY, description="Not a month, no tenant, or a tenant that does not sell."
            ),
            404: OpenApiResponse(description="No such tenant among those you may see."),
        },
    )
    def get(self, request):
        return Response(MarginSerializer(seller_margin(self.seller(), self.period())).data)

    def seller(self) -> Tenant | None:
        """The seller asked for; None for the platform. Visibility comes first, so a
        tenant out of scope answers 404 whatever its kind."""
        if not self.request.query_params.get("tenant"):
            if self.request.user.is_superuser:
                return None
            message = "This parameter is required; only platform operators omit it."
            raise ValidationError({"tenant": [message]})
        tenant = self.visible_tenant()
        if not is_seller(tenant):
            kind = tenant.get_kind_display().lower()
            message = f"Margin is for partners and resellers; {tenant.slug} is an {kind}."
            raise ValidationError({"tenant": [message]})
        return tenant


class UsageAlertViewSet(PeriodMixin, ScopedReadOnlyModelViewSet):
    """Thresholds crossed, newest first; `tenant` includes its subtree."""

    queryset = UsageAlert.objects.select_related("tenant", "plan_item__meter", "plan_item__plan")
    serializer_class = UsageAlertSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str),
            OpenApiParameter("period", str, description="YYYY-MM"),
        ]
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def get_queryset(self):
        alerts = super().get_queryset()
        tenant = self.visible_tenant(required=False)
        if tenant is not None:
            alerts = alerts.filter(subtrees_q([tenant], "tenant__"))
        if self.request.query_params.get("period"):
            alerts = alerts.filter(period=self.period())
        return alerts


class EntitlementView(PeriodMixin, APIView):
    """May the tenant keep using the meter now? From real-time usage."""

    @extend_schema(
        parameters=[
            OpenApiParameter("tenant", str, required=True),
            OpenApiParameter("meter", str, required=True),
            OpenApiParameter(
                "dimension",
                str,
                description="A value of the meter's grouping attribute (e.g. tier hot); "
                "absent: events without the attribute. The plan item that would price such "
                "usage answers.",
            ),
        ],
        responses=EntitlementSerializer,
    )
    def get(self, request):
        tenant = self.visible_tenant()
        code = request.query_params.get("meter")
        if not code:
            raise ValidationError({"meter": ["This parameter is required."]})
        meter = Meter.objects.filter(code=code).first()
        if meter is None:
            raise ValidationError({"meter": [f"Unknown meter {code!r}."]})
        dimension = request.query_params.get("dimension", "")
        if len(dimension) > 256:
            raise ValidationError({"dimension": ["At most 256 characters."]})
        answer = entitlement(tenant, meter, dimension=dimension)
        return Response(EntitlementSerializer(answer).data)
