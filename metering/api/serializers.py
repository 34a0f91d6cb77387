from rest_framework import serializers

from metering.models import Meter, UsageEvent


class MeterSerializer(serializers.ModelSerializer):
    class Meta:
        model = Meter
        fields = ["code", "name", "category", "unit", "aggregation", "group_by"]


class UsageEventSerializer(serializers.ModelSerializer):
    """A detailed usage record as integrations read it."""

    tenant = serializers.CharField(source="tenant.slug")
    meter = serializers.CharField(source="meter.code")
    category = serializers.CharField(source="meter.category")
    unit = serializers.CharField(source="meter.unit")
    quantity = serializers.DecimalField(max_digits=20, decimal_places=6, coerce_to_string=True)
    timestamp = serializers.DateTimeField(source="occurred_at")

    class Meta:
        model = UsageEvent
        fields = [
            "event_id", "tenant", "meter", "category", "unit", "quantity",
            "timestamp", "received_at", "source", "attributes",
        ]  # fmt: skip


# The CSV columns of a record: (header, values() path).
RECORD_CSV_COLUMNS = [
    ("event_id", "event_id"),
    ("tenant", "tenant__slug"),
    ("tenant_name", "tenant__name"),
    ("meter", "meter__code"),
    ("category", "meter__category"),
    ("unit", "meter__unit"),
    ("quantity", "quantity"),
    ("timestamp", "occurred_at"),
    ("received_at", "received_at"),
    ("source", "source"),
    ("dimension", "dimension"),
    ("attributes", "attributes"),
]
