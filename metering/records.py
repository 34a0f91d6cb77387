"""Usage records read from an event store that is not the relational table
(ClickHouse): the records API's JSON pages and CSV, with the same filters,
visibility and newest-first order as the table's queryset path.

The filters are validated by the same FilterSet as the table's path and turned
into a RecordQuery: the tenants the caller sees (within the `tenant` filter),
meter ids, source and time bounds. Pages are keyed by a cursor over
(occurred_at, batch, tenant, event id), which is unique and newest first.
"""

import base64
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.http import Http404
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from accounts.models import Tenant, visibility_q
from metering.filtersets import UsageEventFilterSet
from metering.models import Meter, UsageEvent
from utilities.csv import streaming_csv

INVALID_CURSOR = "Invalid cursor"
CSV_CHUNK = 2000


@dataclass
class RecordQuery:
    tenant_ids: list[int] | None = None  # None: every tenant
    meter_ids: list[int] | None = None
    source: str = ""
    start: dt.datetime | None = None  # inclusive
    end: dt.datetime | None = None  # exclusive
    end_inclusive: dt.datetime | None = None
    before: tuple | None = field(default=None)  # a cursor: records strictly older
    order_params: dict = field(default_factory=dict)  # parameters of a custom order


def record_query(request) -> RecordQuery:
    """The records the caller asked for and may see; a 400 for invalid filters."""
    filters = UsageEventFilterSet(request.query_params, UsageEvent.objects.none(), request=request)
    if not filters.is_valid():
        raise ValidationError(filters.errors)
    return query_of(filters, request.query_params.get("end", ""), request.user)


def query_of(filters, raw_end: str, principal) -> RecordQuery:
    """A valid events FilterSet's choices as a RecordQuery, within what `principal`
    sees (`raw_end`: the end as typed, a bare date meaning the whole day)."""
    data = filters.form.cleaned_data
    query = RecordQuery(source=data.get("source") or "")
    visible = Tenant.objects.all()
    condition = visibility_q(principal)
    if condition is False:
        query.tenant_ids = []
    elif condition is not True:
        visible = visible.filter(condition)
        query.tenant_ids = list(visible.values_list("pk", flat=True))
    if data.get("tenant"):
        tenant = Tenant.objects.visible_to(principal).filter(slug=data["tenant"]).first()
        if tenant is None:
            raise Http404("No such tenant.")
        query.tenant_ids = list(
            visible.filter(
                tree_id=tenant.tree_id, lft__gte=tenant.lft, lft__lte=tenant.rght
            ).values_list("pk", flat=True)
        )
    if data.get("meter"):
        query.meter_ids = list(
            Meter.objects.filter(code=data["meter"]).values_list("pk", flat=True)
        )
    if data.get("category"):
        ids = Meter.objects.filter(category=data["category"]).values_list("pk", flat=True)
        query.meter_ids = [m for m in ids if query.meter_ids is None or m in query.meter_ids]
    query.start = data.get("start")
    if data.get("end"):
        # A bare date means the whole day: end dates are inclusive.
        if len(raw_end) == 10:
            query.end = data["end"] + dt.timedelta(days=1)
        else:
            query.end_inclusive = data["end"]
    return query


def encode_cursor(key: tuple) -> str:
    occurred, batch, tenant_id, event_id = key
    text = f"{occurred.isoformat()}|{batch}|{tenant_id}|{event_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(raw: str) -> tuple:
    try:
        occurred, batch, tenant_id, event_id = (
            base64.urlsafe_b64decode(raw.encode()).decode().split("|", 3)
        )
        moment = dt.datetime.fromisoformat(occurred)
        if moment.tzinfo is None:
            raise ValueError
        return moment.astimezone(dt.UTC), int(batch), int(tenant_id), event_id
    except (ValueError, UnicodeError, TypeError):
        raise NotFound(INVALID_CURSOR) from None


def page_size(request, default=100, most=1000) -> int:
    try:
        size = int(request.query_params.get("page_size") or default)
    except ValueError:
        return default
    return max(1, min(size, most))


class Labels:
    """Tenant and meter fields of records, looked up once per page."""

    def __init__(self, records):
        self.tenants = {
            pk: (slug, name)
            for pk, slug, name in Tenant.objects.filter(
                pk__in={r.tenant_id for r in records}
            ).values_list("pk", "slug", "name")
        }
        self.meters = {
            pk: (code, category, unit)
            for pk, code, category, unit in Meter.objects.values_list(
                "pk", "code", "category", "unit"
            )
        }


def as_json(record, labels: Labels) -> dict:
    code, category, unit = labels.meters[record.meter_id]
    return {
        "event_id": record.event_id,
        "tenant": labels.tenants[record.tenant_id][0],
        "meter": code,
        "category": category,
        "unit": unit,
        "quantity": f"{Decimal(record.quantity):.6f}",
        "timestamp": iso(record.occurred_at),
        "received_at": iso(record.received_at),
        "source": record.source,
        "attributes": record.attributes,
    }


def iso(moment: dt.datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def as_csv_row(record, labels: Labels) -> list:
    code, category, unit = labels.meters[record.meter_id]
    slug, name = labels.tenants[record.tenant_id]
    return [
        record.event_id, slug, name, code, category, unit, record.quantity, record.occurred_at,
        record.received_at, record.source, record.dimension, record.attributes,
    ]  # fmt: skip


def records_response(request, store, csv_header: list[str]):
    """The records API's answer from `store`: a page of JSON, or the whole CSV."""
    query = record_query(request)
    if request.accepted_renderer.format == "csv":
        return streaming_csv(csv_header, csv_rows(store, query), "usage-records.csv")
    if raw := request.query_params.get("cursor"):
        query.before = decode_cursor(raw)
    size = page_size(request)
    records = store.records(query, size + 1)
    more = len(records) > size
    records = records[:size]
    labels = Labels(records)
    url = request.build_absolute_uri()
    following = None
    if more:
        following = replace_query_param(url, "cursor", encode_cursor(records[-1].key))
    return Response(
        {
            "next": following,
            # Pages follow each other newest first; the first page is the way back.
            "previous": remove_query_param(url, "cursor") if query.before else None,
            "results": [as_json(r, labels) for r in records],
        }
    )


def csv_rows(store, query: RecordQuery):
    """Every matching record, newest first, read a chunk at a time."""
    while True:
        records = store.records(query, CSV_CHUNK)
        labels = Labels(records)
        for record in records:
            yield as_csv_row(record, labels)
        if len(records) < CSV_CHUNK:
            return
        query.before = records[-1].key
