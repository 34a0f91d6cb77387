"""The tenant billing table (DailyUsage) and the record of the rollups that fill it."""

from django.db import models
from django.db.models import Max

from accounts.models import ScopedQuerySet, Tenant
from metering.models import Meter, UsageEvent


class DailyUsage(models.Model):
    """A tenant's subtree total for one meter, UTC day, dimension value and source.

    Every ancestor has its own rows, so reading any level reads that tenant's
    rows only, whatever the number of agents below it. Quantities follow the
    meter's aggregation per member tenant per day, summed over the subtree.
    """

    # A derived table the rollup rewrites day by day: no separate foreign-key indexes
    # (the unique key leads with the tenant) and no database-level foreign-key
    # checks, which cost the rollup two trigger calls per row. Deleting a tenant or
    # meter still removes its rows (Django's cascade).
    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="daily_usage",
        db_index=False,
        db_constraint=False,
    )
    meter = models.ForeignKey(
        Meter,
        on_delete=models.CASCADE,
        related_name="daily_usage",
        db_index=False,
        db_constraint=False,
    )
    day = models.DateField()
    dimension = models.CharField(max_length=256, blank=True, default="")
    source = models.CharField(max_length=8, choices=UsageEvent.Source.choices)
    quantity = models.DecimalField(max_digits=28, decimal_places=6)
    event_count = models.BigIntegerField()

    objects = ScopedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "meter", "dimension", "source"],
                name="daily_usage_unique_key",
            )
        ]
        indexes = [models.Index(fields=["day"], name="daily_usage_day")]

    def __str__(self) -> str:
        return f"{self.tenant} {self.meter.code} {self.day}: {self.quantity}"


class RolledDay(models.Model):
    """The watermark each day was last recomputed with.

    DailyUsage for `day` aggregates exactly the day's events with id ≤
    `watermark`; later events of that day form the real-time tail.
    """

    day = models.DateField(unique=True)
    watermark = models.BigIntegerField()
    rolled_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.day} ≤ {self.watermark}"


class RollupRunQuerySet(models.QuerySet):
    def watermark(self) -> int:
        """Events with an id up to this are in DailyUsage (the last complete run's mark)."""
        return self.filter(status=RollupRun.Status.SUCCESS).aggregate(w=Max("watermark"))["w"] or 0

    def last_success(self):
        return self.filter(status=RollupRun.Status.SUCCESS).order_by("-finished_at").first()


class RollupRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCESS = "success", "Success"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=32, default="manual")
    window_start = models.DateField(null=True, blank=True)
    window_end = models.DateField(null=True, blank=True)
    watermark = models.BigIntegerField(default=0)
    days_recomputed = models.IntegerField(default=0)
    events_read = models.BigIntegerField(default=0)
    rows_written = models.BigIntegerField(default=0)
    duration_ms = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")

    objects = RollupRunQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["status", "watermark"], name="rollup_run_status_mark")]

    def __str__(self) -> str:
        return f"Rollup {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class DistinctValue(models.Model):
    """For unique_count meters: which (member tenant, value) pairs were seen on which
    days of a month, as a bit per day (bit 0 = the 1st).

    A distinct count over any period is then a pass over the pairs of the subtree
    and months concerned, whatever the number of events behind them.
    """

    tenant = models.ForeignKey(
        Tenant, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    month = models.DateField()
    source = models.CharField(max_length=8, choices=UsageEvent.Source.choices)
    value = models.CharField(max_length=256)
    days = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["meter", "month", "tenant", "source", "value"],
                name="distinct_value_unique_key",
            )
        ]
        indexes = [models.Index(fields=["month"], name="distinct_value_month")]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.value} {self.month:%Y-%m}"
