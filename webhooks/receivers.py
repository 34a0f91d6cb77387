"""Billing's announcements become webhook events. Each runs after billing's commit;
a failure here is logged and never reaches the alert or statement behind it."""

import logging

from django_q.models import Schedule

from billing.api.serializers import StatementSerializer, UsageAlertSerializer
from webhooks.events import emit
from webhooks.models import EventType

logger = logging.getLogger(__name__)
SWEEP_SCHEDULE = "webhook-deliveries"


def guarded_emit(event_type: str, tenant, data_of) -> None:
    try:
        emit(event_type, tenant, data_of())
    except Exception:  # noqa: BLE001 - see the module's docstring
        logger.exception("Webhook event %s for tenant %s not stored", event_type, tenant.pk)


def on_alert_raised(sender, alert, **kwargs) -> None:
    guarded_emit(
        EventType.ALERT_RAISED, alert.tenant, lambda: {"alert": UsageAlertSerializer(alert).data}
    )


def on_entitlement_blocked(sender, alert, **kwargs) -> None:
    def data() -> dict:
        item = alert.plan_item
        return {
            "entitlement": {
                "tenant": alert.tenant.slug,
                "meter": item.meter.code,
                "plan": item.plan.code,
                "dimension": item.dimension,
                "limit": str(item.limit),
                "used": str(alert.usage),
                "period": f"{alert.period:%Y-%m}",
                "allowed": False,
            }
        }

    guarded_emit(EventType.ENTITLEMENT_BLOCKED, alert.tenant, data)


def on_statement_finalized(sender, statement, **kwargs) -> None:
    guarded_emit(
        EventType.STATEMENT_FINALIZED,
        statement.tenant,
        lambda: {"statement": StatementSerializer(statement).data},
    )


def install_schedule_after_migrate(sender, **kwargs) -> None:
    install_schedule()


def install_schedule() -> Schedule:
    """The sweeper, every minute: retries whose own schedule was lost, tries whose
    worker died."""
    sweeper, _ = Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE,
        defaults={
            "func": "webhooks.delivery.deliver_due",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )
    return sweeper
