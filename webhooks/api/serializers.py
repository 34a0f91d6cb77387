from rest_framework import serializers

from accounts.models import Tenant
from webhooks.models import EventType, Webhook, WebhookAttempt


class WebhookSerializer(serializers.ModelSerializer):
    """A tenant's endpoint; `secret` appears once, in the answer that creates it."""

    tenant = serializers.SlugRelatedField(slug_field="slug", queryset=Tenant.objects.none())
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.choices), allow_empty=False
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "tenant",
            "url",
            "events",
            "is_active",
            "disabled_reason",
            "failing_since",
            "created_at",
        ]
        read_only_fields = ["disabled_reason", "failing_since", "created_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            # A tenant outside the caller's management reads as "does not exist".
            self.fields["tenant"].queryset = Tenant.objects.managed_by(request.user)


class CreatedWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(
        read_only=True, help_text="Signs every delivery; shown only in this answer."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    event_id = serializers.CharField(source="delivery.event_id")
    type = serializers.CharField(source="delivery.event.type")
    state = serializers.CharField(
        source="delivery.state", help_text="The delivery's state now: pending, delivered, …"
    )

    class Meta:
        model = WebhookAttempt
        fields = [
            "id",
            "event_id",
            "type",
            "attempt",
            "status_code",
            "duration_ms",
            "created",
            "next_attempt_at",
            "error",
            "state",
        ]
