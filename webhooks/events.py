"""Turn what billing announced into events owed to the webhooks that asked for them."""

import json
import logging
import uuid

from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from accounts.models import Tenant
from webhooks.models import Webhook, WebhookDelivery, WebhookEvent

logger = logging.getLogger(__name__)


def listening(event_type: str, tenant: Tenant) -> list[Webhook]:
    """Active webhooks of the tenant or of a tenant above it that take this type."""
    above = Webhook.objects.filter(
        is_active=True,
        tenant__tree_id=tenant.tree_id,
        tenant__lft__lte=tenant.lft,
        tenant__rght__gte=tenant.rght,
    )
    # The type list is short and JSON: matched here, the same on every database.
    return [w for w in above if event_type in w.events]


def event_body(event_id: str, event_type: str, created, tenant: Tenant, data: dict) -> str:
    payload = {
        "id": event_id,
        "type": event_type,
        "created": created.isoformat().replace("+00:00", "Z"),
        "tenant": tenant.slug,
        "data": data,
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str)


def emit(event_type: str, tenant: Tenant, data: dict) -> WebhookEvent | None:
    """Store the event once and owe it to each listening webhook; the first tries are
    queued after commit. None when no webhook listens."""
    webhooks = listening(event_type, tenant)
    if not webhooks:
        return None
    created = timezone.now().replace(microsecond=0)
    event_id = f"evt_{uuid.uuid4().hex}"
    with transaction.atomic():
        event = WebhookEvent.objects.create(
            id=event_id,
            type=event_type,
            tenant=tenant,
            created=created,
            body=event_body(event_id, event_type, created, tenant, data),
        )
        deliveries = WebhookDelivery.objects.bulk_create(
            WebhookDelivery(webhook=w, event=event, next_attempt_at=created) for w in webhooks
        )
        ids = [d.pk for d in deliveries] or list(
            WebhookDelivery.objects.filter(event=event).values_list("pk", flat=True)
        )
        transaction.on_commit(lambda: queue_deliveries(ids))
    return event


def queue_deliveries(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        async_task(
            "webhooks.delivery.deliver",
            delivery_id,
            task_name=f"webhook-delivery-{delivery_id}-{uuid.uuid4().hex[:8]}",
            group="webhooks",
        )
