from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from accounts.api.viewsets import ScopedGenericViewSet
from metering.api.parsers import EventsJSONParser
from metering.api.serializers import (
    RECORD_CSV_COLUMNS,
    MeterSerializer,
    UsageEventSerializer,
)
from metering.filtersets import UsageEventFilterSet
from metering.ingestion import BatchRejected, EventError, ingest_events
from metering.models import Meter, UsageEvent
from metering.records import records_response
from metering.stores import event_store, uses_clickhouse
from utilities.api.pagination import CheckedCursorPagination
from utilities.csv import CSVRenderer, streaming_csv


# Platform reference data, the same for every caller: not tenant-owned, so not on
# the scoped base.
class MeterViewSet(viewsets.ReadOnlyModelViewSet):
    """The meter catalog: what can be metered, in which unit, aggregated how."""

    queryset = Meter.objects.filter(is_active=True)
    serializer_class = MeterSerializer
    lookup_field = "code"


class EventCursorPagination(CheckedCursorPagination):
    ordering = ("-occurred_at", "-id")
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


ERROR_BODY = inline_serializer(
    "ErrorList",
    {
        "errors": serializers.ListField(
            child=inline_serializer(
                "Error",
                {
                    "index": serializers.IntegerField(required=False),
                    "field": serializers.CharField(required=False),
                    "message": serializers.CharField(),
                },
            )
        )
    },
)
INGEST_RESULT = inline_serializer(
    "IngestResult",
    {"accepted": serializers.IntegerField(), "duplicates": serializers.IntegerField()},
)
ONE_EVENT = {
    "event_id": "call-8f14e45f",
    "tenant": "acme-dental-ava",
    "meter": "call_minutes",
    "quantity": "12.5",
    "timestamp": "2026-11-25T08:30:00Z",
    "source": "api",
    "attributes": {"direction": "inbound"},
}


class UsageEventViewSet(ScopedGenericViewSet):
    """Telemetry in (POST) and detailed usage records out (GET, JSON or CSV)."""

    throttle_scope = "ingest"

    queryset = UsageEvent.objects.select_related("tenant", "meter")
    serializer_class = UsageEventSerializer
    filterset_class = UsageEventFilterSet
    pagination_class = EventCursorPagination
    parser_classes = [EventsJSONParser]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]
    key_write_scope = "ingest"

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format", str, enum=["json", "csv"], description="csv streams every matching row."
            )
        ]
    )
    def list(self, request, *args, **kwargs):
        if uses_clickhouse():
            header = [h for h, _ in RECORD_CSV_COLUMNS]
            return records_response(request, event_store(), header)
        queryset = self.filter_queryset(self.get_queryset())
        if request.accepted_renderer.format == "csv":
            ordered = queryset.order_by("-occurred_at", "-id")
            rows = ordered.values_list(*(path for _, path in RECORD_CSV_COLUMNS)).iterator(
                chunk_size=2000
            )
            return streaming_csv([h for h, _ in RECORD_CSV_COLUMNS], rows, "usage-records.csv")
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT},
        responses={
            201: INGEST_RESULT,
            400: OpenApiResponse(ERROR_BODY, description="Invalid batch; nothing stored."),
            413: OpenApiResponse(description="Body over 5 MB."),
        },
        examples=[
            OpenApiExample("One event", value=ONE_EVENT, request_only=True),
            OpenApiExample("A batch", value={"events": [ONE_EVENT]}, request_only=True),
            OpenApiExample(
                "Rejected batch",
                value={"errors": [{"index": 0, "field": "quantity", "message": "Not a number."}]},
                response_only=True,
                status_codes=["400"],
            ),
        ],
        description=(
            'Send one event object, or {"events": [...]} with up to 10,000. All or nothing: '
            "any invalid event rejects the batch with its index, field and reason. Events "
            "whose event_id is already stored are counted as duplicates and not stored again."
        ),
    )
    def create(self, request, *args, **kwargs):
        try:
            result = ingest_events(events_of(request.data), principal=request.user)
        except BatchRejected as rejected:
            return Response(
                {"errors": [e.as_dict() for e in rejected.errors]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(
            {"accepted": result.accepted, "duplicates": result.duplicates},
            status=status.HTTP_201_CREATED,
        )


def events_of(body) -> list:
    """The events of a body: one event object, or {"events": [...]} alone."""
    if not isinstance(body, dict):
        raise BatchRejected([EventError('Send one event object or {"events": [...]}.')])
    if "events" in body:
        extra = sorted(set(body) - {"events"})
        if extra:
            raise BatchRejected(
                [EventError("Unknown field next to 'events'.", name) for name in extra]
            )
        return body["events"]
    return [body]
