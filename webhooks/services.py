"""Creating and changing webhooks: only the tenant's managers, only public addresses."""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import Tenant
from accounts.services import user_can_manage
from utilities.outbound import SCHEMES, OutboundRefused, Unresolvable, checked_address, url_problem
from webhooks.models import EventType, Webhook
from webhooks.signing import new_secret


def address_problem(url: str) -> str | None:
    """Why the portal won't send to `url`, or None. A name that does not resolve now
    is accepted (DNS may follow the webhook); every delivery checks again."""
    problem = url_problem(url)
    if problem:
        return problem
    parts = urlsplit(url)
    try:
        checked_address(
            parts.hostname,
            parts.port or SCHEMES[parts.scheme],
            allow_private=settings.USAGE_WEBHOOK_ALLOW_PRIVATE,
        )
    except Unresolvable:
        return None
    except OutboundRefused as refused:
        return str(refused)
    return None


def events_problem(events) -> str | None:
    known = set(EventType.values)
    if not isinstance(events, list) or not events:
        return f"Give a list of event types: {', '.join(EventType.values)}."
    unknown = [e for e in events if e not in known]
    if unknown:
        return f"Unknown event type {unknown[0]!r}; use {', '.join(EventType.values)}."
    return None


def check(url: str, events) -> None:
    errors = {}
    problem = address_problem(url)
    if problem:
        errors["url"] = problem
    problem = events_problem(events)
    if problem:
        errors["events"] = problem
    if errors:
        raise ValidationError(errors)


def create_webhook(*, user, tenant: Tenant, url: str, events: list[str]) -> Webhook:
    if not user_can_manage(user, tenant):
        raise ValidationError({"tenant": "Only the tenant's managers add its webhooks."})
    check(url, events)
    return Webhook.objects.create(
        tenant=tenant, url=url, events=sorted(set(events)), secret=new_secret(), created_by=user
    )


def update_webhook(*, user, webhook: Webhook, **changes) -> Webhook:
    if not user_can_manage(user, webhook.tenant):
        raise PermissionDenied("You need the manager or admin role on this tenant.")
    url = changes.get("url", webhook.url)
    events = changes.get("events", webhook.events)
    check(url, events)
    webhook.url, webhook.events = url, sorted(set(events))
    if "is_active" in changes:
        webhook.is_active = changes["is_active"]
        if webhook.is_active:
            # Enabled again: a fresh start for the three-day rule.
            webhook.failing_since, webhook.disabled_reason = None, ""
    webhook.save()
    return webhook
