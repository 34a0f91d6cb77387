"""Usage reports mailed on a schedule: who receives which tenant's report how often,
and which periods went out (each once)."""

from django.conf import settings
from django.db import models

from accounts.models import Tenant


class ReportSchedule(models.Model):
    class Frequency(models.TextChoices):
        WEEKLY = "weekly", "Weekly (Monday to Sunday, sent on Monday)"
        MONTHLY = "monthly", "Monthly (the calendar month, sent on the 1st)"

    MAX_RECIPIENTS = 20
    # Mail goes to addresses a manager types in: a tenant's reports stay a handful.
    MAX_PER_TENANT = 20

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="report_schedules")
    frequency = models.CharField(max_length=8, choices=Frequency.choices)
    recipients = models.JSONField(default=list, help_text="Email addresses, up to 20.")
    is_active = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__name", "id"]

    def __str__(self) -> str:
        return f"{self.get_frequency_display()} report of {self.tenant}"


class ReportDelivery(models.Model):
    """A period's report of a schedule: its row is claimed before the mail goes out,
    so a restarted cluster or a second worker never sends it twice."""

    schedule = models.ForeignKey(ReportSchedule, on_delete=models.CASCADE, related_name="sent")
    period_start = models.DateField()
    period_end = models.DateField()
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "period_start"], name="one_report_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.schedule} {self.period_start}–{self.period_end}"
