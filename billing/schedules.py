"""The scheduled work, installed idempotently (after migrate, or `install_schedules`)."""

from django.conf import settings
from django_q.models import Schedule

ROLLUP_SCHEDULE = "usage-rollup"


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
    return [rollup]
