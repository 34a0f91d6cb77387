"""The scheduled work, installed idempotently (after migrate, or `install_schedules`)."""

from datetime import UTC, datetime, time

from django.conf import settings
from django.utils import timezone
from django_q.models import Schedule

from billing.periods import month_of, next_month

ROLLUP_SCHEDULE = "usage-rollup"
FINALIZE_SCHEDULE = "finalize-statements"
# Statements of a month are finalized shortly after it closes (UTC).
FINALIZE_AT = time(0, 30)


def install_schedules() -> list[Schedule]:
    """Create or update each schedule by name; running it again changes nothing."""
    rollup, _ = Schedule.objects.update_or_create(
        name=ROLLUP_SCHEDULE,
        defaults={
            "func": "billing.tasks.scheduled_rollup",
            "schedule_type": Schedule.MINUTES,
            "minutes": settings.USAGE_ROLLUP_INTERVAL_MINUTES,
            "repeats": -1,
        },
    )
    finalize, _ = Schedule.objects.update_or_create(
        name=FINALIZE_SCHEDULE,
        defaults={
            "func": "billing.tasks.finalize_statements",
            "schedule_type": Schedule.MONTHLY,
            "repeats": -1,
            "next_run": next_month_start(timezone.now()),
        },
    )
    return [rollup, finalize]


def next_month_start(now: datetime) -> datetime:
    first = next_month(month_of(now.date()))
    return datetime.combine(first, FINALIZE_AT, tzinfo=UTC)
