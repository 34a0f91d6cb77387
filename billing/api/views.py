from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Tenant
from billing.forms import UsageQueryForm
from billing.usage import usage_summary
from usage_portal.api.csv import CSVRenderer, streaming_csv

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
        tenant = get_object_or_404(Tenant.objects.visible_to(request.user), slug=query["tenant"])
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
