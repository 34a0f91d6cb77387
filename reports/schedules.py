"""Writing report schedules: only a tenant's managers, for a tenant they manage."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django_q.models import Schedule

from accounts.services import user_can_manage
from reports.models import ReportSchedule

SEND_SCHEDULE = "scheduled-usage-reports"


def save_schedule(schedule: ReportSchedule, *, user, **fields) -> ReportSchedule:
    tenant = fields.get("tenant", getattr(schedule, "tenant", None))
    if tenant is None or not user_can_manage(user, tenant):
        raise PermissionDenied("Only the tenant's managers set up its reports.")
    for name, value in fields.items():
        setattr(schedule, name, value)
    if len(schedule.recipients) > ReportSchedule.MAX_RECIPIENTS:
        raise ValidationError({"recipients": f"At most {ReportSchedule.MAX_RECIPIENTS} addresses."})
    others = ReportSchedule.objects.filter(tenant=tenant).exclude(pk=schedule.pk)
    if others.count() >= ReportSchedule.MAX_PER_TENANT:
        raise ValidationError(
            {"tenant": f"A tenant has at most {ReportSchedule.MAX_PER_TENANT} scheduled reports."}
        )
    with transaction.atomic():
        schedule.full_clean()
        schedule.save()
    return schedule


def install_schedule() -> Schedule:
    """Hourly: a report is due from the first hour of its week or month; each goes
    out once however often this runs."""
    sender, _ = Schedule.objects.update_or_create(
        name=SEND_SCHEDULE,
        defaults={
            "func": "reports.scheduled.send_due_reports",
            "schedule_type": Schedule.HOURLY,
            "repeats": -1,
        },
    )
    return sender
