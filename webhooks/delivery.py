"""Sending an event to a webhook: signed, retried with backoff, logged per try.

Each try first claims the delivery (one UPDATE), so a retry schedule, the sweeper
and "send again" racing each other still send once per claim. A claim holds the
delivery for LEASE; a worker that dies mid-try leaves it for the sweeper.
"""

import logging
import random
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import schedule

from accounts.mail import branded_mail, managers_by_brand
from utilities.outbound import OutboundRefused
from utilities.outbound import request as outbound_request
from webhooks.events import queue_deliveries
from webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from webhooks.signing import EVENT_HEADER, SIGNATURE_HEADER, signature_header

logger = logging.getLogger(__name__)

# The wait after each failed try: the first retry within a minute, the last try
# about a day after the first (8 tries over 24 hours).
RETRY_DELAYS = [
    timedelta(seconds=20),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=8),
    timedelta(hours=12),
]
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.2  # each wait moves by up to ±20 %, so failed receivers are not hit in step
LEASE = timedelta(minutes=2)
DISABLE_AFTER = timedelta(days=3)
EXCERPT = 300


def retry_delay(failed_attempts: int, rng=random) -> timedelta:
    """The wait after the n-th failed try (1-based), with jitter."""
    base = RETRY_DELAYS[failed_attempts - 1]
    return base * (1 + rng.uniform(-JITTER, JITTER))


def claim(delivery_id: int, now) -> bool:
    """Take the delivery for one try, if it is pending and due; False otherwise."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = WebhookDelivery.objects.filter(
        due, pk=delivery_id, state=WebhookDelivery.State.PENDING
    ).update(attempts=F("attempts") + 1, next_attempt_at=now + LEASE)
    return claimed == 1


def deliver(delivery_id: int) -> str:
    """One try of one delivery; what happened, for the task log."""
    now = timezone.now()
    if not claim(delivery_id, now):
        return "not due"
    delivery = WebhookDelivery.objects.select_related("webhook__tenant", "event").get(
        pk=delivery_id
    )
    webhook = delivery.webhook
    if not webhook.is_active:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            state=WebhookDelivery.State.CANCELLED, next_attempt_at=None
        )
        return "webhook disabled"
    status, error, excerpt, duration_ms = send(webhook, delivery)
    return record(delivery, webhook, status, error, excerpt, duration_ms)


def send(webhook: Webhook, delivery: WebhookDelivery) -> tuple[int | None, str, str, int]:
    body = delivery.event.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "webhook-delivery/1",
        EVENT_HEADER: delivery.event.type,
        SIGNATURE_HEADER: signature_header(webhook.secret, int(time.time()), body),
    }
    started = time.monotonic()
    try:
        answer = outbound_request(
            webhook.url,
            method="POST",
            body=body,
            headers=headers,
            timeout=settings.USAGE_WEBHOOK_TIMEOUT_SECONDS,
            max_bytes=EXCERPT,
            allow_private=settings.USAGE_WEBHOOK_ALLOW_PRIVATE,
        )
    except OutboundRefused as refused:
        return None, str(refused)[:EXCERPT], "", elapsed_ms(started)
    excerpt = answer.body[:EXCERPT].decode("utf-8", "replace")
    return answer.status, "", excerpt, elapsed_ms(started)


def elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def record(delivery, webhook, status, error, excerpt, duration_ms) -> str:
    now = timezone.now()
    ok = status is not None and 200 <= status < 300
    retry_at = None
    if not ok and delivery.attempts < MAX_ATTEMPTS:
        retry_at = now + retry_delay(delivery.attempts)
    with transaction.atomic():
        WebhookAttempt.objects.create(
            delivery=delivery,
            attempt=delivery.attempts,
            status_code=status,
            duration_ms=duration_ms,
            error=error,
            response_excerpt=excerpt,
            created=now,
            next_attempt_at=retry_at,
        )
        if ok:
            state = WebhookDelivery.State.DELIVERED
        elif retry_at is not None:
            state = WebhookDelivery.State.PENDING
        else:
            state = WebhookDelivery.State.FAILED
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            state=state, next_attempt_at=retry_at, delivered_at=now if ok else None
        )
        if ok:
            Webhook.objects.filter(pk=webhook.pk).update(failing_since=None)
        else:
            note_failure(webhook, now)
    if retry_at is not None:
        schedule_retry(delivery.pk, retry_at)
    return "delivered" if ok else f"failed ({status or error})"


def schedule_retry(delivery_id: int, when) -> None:
    schedule(
        "webhooks.delivery.deliver",
        delivery_id,
        name=f"webhook-retry-{delivery_id}-{uuid.uuid4().hex[:8]}",
        schedule_type=Schedule.ONCE,
        next_run=when,
    )


def note_failure(webhook: Webhook, now) -> None:
    """Remember since when the webhook fails; three days on, disable it and tell its
    managers (once: only the try that disables it mails)."""
    Webhook.objects.filter(pk=webhook.pk, failing_since__isnull=True).update(failing_since=now)
    disabled = Webhook.objects.filter(
        pk=webhook.pk, is_active=True, failing_since__lte=now - DISABLE_AFTER
    ).update(
        is_active=False,
        disabled_reason="Every delivery failed for 3 days; fix the endpoint and enable it again.",
    )
    if disabled:
        WebhookDelivery.objects.filter(
            webhook_id=webhook.pk, state=WebhookDelivery.State.PENDING
        ).update(state=WebhookDelivery.State.CANCELLED, next_attempt_at=None)
        transaction.on_commit(lambda: mail_disabled(webhook.pk))


def mail_disabled(webhook_id: int) -> None:
    webhook = Webhook.objects.select_related("tenant").get(pk=webhook_id)
    subject = f"Webhook disabled: {webhook.url}"
    body = (
        f"The webhook of {webhook.tenant.name} at {webhook.url} answered no delivery "
        "successfully for 3 days, so it was disabled and its pending deliveries "
        "cancelled.\nFix the endpoint, enable the webhook again (PATCH is_active: true, "
        "or the admin), and send the deliveries you need again from its log.\n"
    )
    for brand, recipients in managers_by_brand([webhook.tenant]):
        try:
            branded_mail(brand, subject=subject, body=body, to=recipients).send()
        except Exception:  # noqa: BLE001 - the disabling stands; the log says who was not told
            logger.exception("Could not mail the managers of webhook %s", webhook_id)


def deliver_due(limit: int = 500) -> int:
    """The sweeper: try every delivery that is due (a lost schedule, a dead worker's
    lease). Returns how many were tried."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.PENDING, next_attempt_at__lte=now
    ).order_by("next_attempt_at")
    tried = 0
    for delivery_id in due.values_list("pk", flat=True)[:limit]:
        if deliver(delivery_id) != "not due":
            tried += 1
    return tried


def send_again(delivery: WebhookDelivery) -> None:
    """Queue one more try now, whatever the delivery's state (the log's "send again")."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        state=WebhookDelivery.State.PENDING, next_attempt_at=timezone.now()
    )
    transaction.on_commit(lambda: queue_deliveries([delivery.pk]))
