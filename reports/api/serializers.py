from rest_framework import serializers

from accounts.models import Tenant
from reports.models import ReportSchedule


class ReportScheduleSerializer(serializers.ModelSerializer):
    """Who receives a tenant's usage report, weekly or monthly."""

    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.none())
    recipients = serializers.ListField(
        child=serializers.EmailField(max_length=254),
        allow_empty=False,
        max_length=ReportSchedule.MAX_RECIPIENTS,
    )
    last_sent_period = serializers.SerializerMethodField()

    class Meta:
        model = ReportSchedule
        fields = [
            "id",
            "tenant",
            "frequency",
            "recipients",
            "is_active",
            "created_at",
            "last_sent_period",
        ]
        read_only_fields = ["created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # A tenant outside the caller's management reads as "does not exist".
            self.fields["tenant"].queryset = Tenant.objects.managed_by(request.user)

    def get_last_sent_period(self, schedule) -> dict | None:
        sent = schedule.sent.filter(sent_at__isnull=False).order_by("-period_start").first()
        if sent is None:
            return None
        return {"start": sent.period_start, "end": sent.period_end, "sent_at": sent.sent_at}

    def validate_recipients(self, value):
        unique = list(dict.fromkeys(v.lower() for v in value))
        return unique
