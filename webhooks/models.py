"""Webhooks: a tenant's endpoints, the events sent to them, and every attempt.

An event (`WebhookEvent`) is stored once with its exact body, so each retry sends
the same bytes; a `WebhookDelivery` is that event owed to one webhook; each HTTP
try is a `WebhookAttempt`, which the deliveries log lists.
"""

from django.conf import settings
from django.db import models

from accounts.models import Tenant


class EventType(models.TextChoices):
    ALERT_RAISED = "alert.raised", "A usage alert was raised"
    ENTITLEMENT_BLOCKED = "entitlement.blocked", "A blocking item reached its limit"
    STATEMENT_FINALIZED = "statement.finalized", "A statement became final"


class Webhook(models.Model):
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=500)
    events = models.JSONField(default=list, help_text="Event types this endpoint receives.")
    # Kept to sign each delivery (HMAC needs the key itself); shown once, at creation.
    secret = models.CharField(max_length=80, editable=False)
    is_active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, editable=False)
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.tenant.slug} → {self.url}"


class WebhookEvent(models.Model):
    id = models.CharField(primary_key=True, max_length=40)  # evt_<32 hex>
    type = models.CharField(max_length=32, choices=EventType.choices)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField()
    body = models.TextField(help_text="The JSON sent, byte for byte the same on every try.")

    def __str__(self) -> str:
        return self.id


class WebhookDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"  # every try used up
        CANCELLED = "cancelled"  # the webhook was disabled or deleted

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the next try is due; while a try runs, when it counts as lost.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["webhook", "event"], name="one_delivery_per_webhook")
        ]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.event_id} → webhook {self.webhook_id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    attempt = models.PositiveIntegerField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField()
    error = models.CharField(max_length=300, blank=True)
    response_excerpt = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.delivery} #{self.attempt}"
