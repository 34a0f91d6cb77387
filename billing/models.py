"""The tenant billing table (DailyUsage), the rollups that fill it, and what is
rated from it: plans, subscriptions, statements and alerts."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Max, Q
from simple_history.models import HistoricalRecords

from accounts.models import ScopedQuerySet, Tenant, restrict_to, visibility_q
from billing import choices, plan_rules
from billing.money import validate_currency
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
    # 32 digits before the point: more than any rate-limited sender can sum in a day,
    # so one tenant's huge quantities cannot overflow (and stop) everyone's rollup.
    quantity = models.DecimalField(max_digits=38, decimal_places=6)
    event_count = models.BigIntegerField()

    objects = ScopedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "meter", "dimension", "source"],
                name="daily_usage_unique_key",
                violation_error_message="This tenant already has a usage row for that meter, "
                "day, dimension and source.",
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
    Status = choices.RunStatus

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    trigger = models.CharField(max_length=32, default="manual")
    # Which process runs it, so a later run can tell a dead run from a slow one.
    host = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
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
        indexes = [
            models.Index(fields=["status", "watermark"], name="rollup_run_status_mark"),
            # last_success(): every summary asks, and compactions add runs all day.
            models.Index(fields=["status", "finished_at"], name="rollup_run_status_finished"),
        ]

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
                violation_error_message="This value is already recorded for that tenant, meter, "
                "month and source.",
            )
        ]
        indexes = [models.Index(fields=["month"], name="distinct_value_month")]

    def __str__(self) -> str:
        return f"{self.tenant_id}:{self.value} {self.month:%Y-%m}"


class PlanQuerySet(models.QuerySet):
    def visible_to(self, principal):
        """Plans a user may see: those owned inside their subtrees, and the plans their
        subtrees are subscribed to (a reseller sees its wholesale plan, nothing else
        of its partner's). Superusers see every plan."""
        tenant_q = visibility_q(principal, prefix="owner__")
        if tenant_q is True or tenant_q is False:
            return restrict_to(self, tenant_q)
        subscribed = Subscription.objects.visible_to(principal).values("plan_id")
        return self.filter(tenant_q | Q(pk__in=subscribed))


class Plan(models.Model):
    """A price list: a base fee per calendar month and one item per metered meter.

    `owner` is the tenant that sells the plan (null: the platform). A plan can be
    subscribed only strictly inside its owner's subtree; a custom plan
    (`customer` set) only by that one customer.
    """

    Period = choices.BillingPeriod

    # Codes are platform-wide: the error must not confirm another seller's plan.
    code = models.SlugField(
        max_length=64,
        unique=True,
        error_messages={"unique": "This code is not available; choose another."},
        help_text="The plan's key in the API and on statements: lowercase letters, digits and "
        "hyphens, unique across the platform. It cannot change once the plan is saved.",
    )
    name = models.CharField(
        max_length=200, help_text="What customers see on their statements and in the portal."
    )
    owner = models.ForeignKey(
        Tenant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="plans",
        help_text="Who sells this plan: a partner or a reseller, or empty for the platform. "
        "Only tenants inside the owner's tree can subscribe. It cannot change once saved.",
    )
    customer = models.ForeignKey(
        Tenant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="custom_plans",
        help_text="Set for a custom plan that only this customer (inside the owner's tree) "
        "may subscribe to; empty for a plan any customer of the owner may take.",
    )
    currency = models.CharField(
        max_length=3,
        default="USD",
        validators=[validate_currency],
        help_text="The ISO 4217 currency of the base fee and every price in this plan.",
    )
    base_fee = models.DecimalField(
        max_digits=14,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Charged per month, prorated by day for partial months (a subscription "
        "that starts or ends mid-month, a plan change).",
    )
    minimum_commitment = models.DecimalField(
        max_digits=14,
        decimal_places=3,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="The least a month's statement comes to: when the base fee and the usage "
        "lines come to less, a true-up makes up the difference. Prorated by day like the "
        "base fee. 0: no minimum.",
    )
    billing_period = models.CharField(
        max_length=8,
        choices=Period.choices,
        default=Period.MONTH,
        help_text="Statements cover calendar months.",
    )
    description = models.TextField(
        blank=True, default="", help_text="Free text for staff; not used in billing."
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Inactive plans take no new subscriptions; running subscriptions go on.",
    )
    # On the plan, not the seller's brand: the plan is the seller's deal with its
    # customers (a seller may want copies of its custom deals only), its owner's
    # managers already edit it in the admin and the API, and its history says who
    # switched it. A brand is inherited down the tree, a switch must not be.
    copy_statements_to_owner = models.BooleanField(
        default=False,
        help_text="Mail the owner's managers a copy of each final statement on this plan "
        "(the customer's managers always receive it).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()
    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def clean(self):
        errors = plan_rules.plan_errors(
            owner=self.owner,
            customer=self.customer,
            currency=self.currency,
            base_fee=self.base_fee,
            minimum_commitment=self.minimum_commitment,
        )
        if errors:
            raise ValidationError(errors)


class PlanItem(models.Model):
    """What a plan includes of one meter, its cap and how overage is handled."""

    OveragePolicy = choices.OveragePolicy
    ChargeModel = choices.ChargeModel

    plan = models.ForeignKey(
        Plan,
        on_delete=models.CASCADE,
        related_name="items",
        help_text="The plan this item belongs to.",
    )
    meter = models.ForeignKey(
        Meter,
        on_delete=models.PROTECT,
        related_name="plan_items",
        help_text="What is counted and priced: once per plan, or once per value of its "
        "grouping attribute (see dimension).",
    )
    # Null, not "": the API's contract says null for "every other value", and "" is what
    # an event without the attribute stores.
    dimension = models.CharField(  # noqa: DJ001
        max_length=256,
        null=True,
        blank=True,
        help_text="Price only this value of the meter's grouping attribute (e.g. storage tier "
        "hot, processing activity ocr). Empty: every value no other item of the meter names "
        "(and events without the attribute).",
    )
    charge_model = models.CharField(
        max_length=16,
        choices=ChargeModel.choices,
        default=ChargeModel.GRADUATED,
        help_text="How the overage is priced. Graduated: each tier prices the units inside it "
        "(plus its flat fee once reached). Volume: the tier the whole overage reaches prices "
        "every unit (plus its flat fee). Package: the unit price per started package.",
    )
    package_size = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Package model only: units per package; a started package is charged whole.",
    )
    included_quantity = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Free units per month before overage, in the meter's unit.",
    )
    limit = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(0)],
        help_text="Hard cap per month, at least the included quantity; required for the block "
        "policy. Empty: no cap.",
    )
    overage_policy = models.CharField(
        max_length=8,
        choices=OveragePolicy.choices,
        default=OveragePolicy.CHARGE,
        help_text="What happens past the included quantity. Charge: the overage is billed. "
        "Block: the overage is billed up to the limit, where further usage is refused (set a "
        "limit). Notify: nothing is refused; the thresholds' alerts tell the customer, and "
        "any price is billed as with charge.",
    )
    # Null when tiers price the overage: a price that is never applied would mislead.
    unit_price = models.DecimalField(
        max_digits=20,
        decimal_places=8,
        null=True,
        blank=True,
        default=Decimal("0"),
        validators=[MinValueValidator(0)],
        help_text="Price of one overage unit in the plan's currency. Required without tiers; "
        "leave it empty when tiers price the overage.",
    )
    tiers = models.JSONField(
        default=list,
        blank=True,
        help_text="Tiers of the overage (counted from the first unit over the included "
        "quantity): each holds the overage up to its up-to bound, inclusive; the last tier has "
        "no bound. Each has a unit price and an optional flat fee.",
    )
    thresholds = models.JSONField(
        default=list,
        blank=True,
        help_text="Alert at these percentages of the limit (of the included quantity when "
        "there is no limit), e.g. 80, 100; each is raised once per month.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = [
            "plan",
            "meter__category",
            "meter__code",
            F("dimension").asc(nulls_last=True),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "meter"],
                condition=Q(dimension__isnull=True),
                name="plan_item_meter_once",
                violation_error_message="This plan already has an item for that meter.",
            ),
            models.UniqueConstraint(
                fields=["plan", "meter", "dimension"],
                condition=Q(dimension__isnull=False),
                name="plan_item_dimension_once",
                violation_error_message="This plan already has an item for that meter and "
                "dimension.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.code}: {self.meter_id and self.meter.code}"

    def clean(self):
        cleaned = plan_rules.clean_plan_item(
            meter=self.meter if self.meter_id else None,
            dimension=self.dimension,
            charge_model=self.charge_model,
            package_size=self.package_size,
            included_quantity=self.included_quantity,
            limit=self.limit,
            overage_policy=self.overage_policy,
            unit_price=self.unit_price,
            tiers=self.tiers,
            thresholds=self.thresholds,
        )
        self.tiers, self.thresholds = cleaned["tiers"], cleaned["thresholds"]
        self.dimension = cleaned["dimension"]

    @property
    def alert_base(self) -> Decimal:
        return plan_rules.alert_base(self.limit, self.included_quantity)


class SubscriptionQuerySet(ScopedQuerySet):
    def in_force(self, start, end=None):
        """Subscriptions covering any day from `start` to `end` (inclusive; open when
        None). The one place that says what "active" means for a subscription."""
        running = self.exclude(ends_on__lt=start)
        return running if end is None else running.filter(starts_on__lte=end)

    def overlapping(self, subscription):
        """The tenant's other subscriptions sharing a day with `subscription`."""
        return (
            self.in_force(subscription.starts_on, subscription.ends_on)
            .filter(tenant_id=subscription.tenant_id)
            .exclude(pk=subscription.pk)
            .select_related("plan")
        )


class Subscription(models.Model):
    """A tenant on a plan from `starts_on` to `ends_on` (inclusive; open when null)."""

    tenant = models.ForeignKey(
        Tenant,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        help_text="Who is billed: a tenant inside the plan owner's tree.",
    )
    plan = models.ForeignKey(
        Plan,
        on_delete=models.PROTECT,
        related_name="subscriptions",
        help_text="The plan the tenant is billed by.",
    )
    starts_on = models.DateField(
        help_text="The first day billed. Starting while another subscription runs ends that "
        "one the day before; base fees are prorated by day."
    )
    ends_on = models.DateField(
        null=True,
        blank=True,
        help_text="The last day billed (inclusive). Empty: runs until ended or replaced.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    history = HistoricalRecords()
    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        ordering = ["tenant", "-starts_on"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=F("starts_on")),
                name="subscription_ends_after_start",
                violation_error_message="The end date cannot be before the start date.",
            ),
            # One open-ended subscription per tenant everywhere; overlapping dated
            # ones are refused by a database trigger/exclusion (migration 0005).
            models.UniqueConstraint(
                fields=["tenant"],
                condition=Q(ends_on__isnull=True),
                name="subscription_one_open_per_tenant",
                violation_error_message="This tenant already has a subscription without an end "
                "date; one active subscription at a time.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan.code} from {self.starts_on}"

    def clean(self):
        errors = plan_rules.subscription_errors(self)
        if self.tenant_id and self.starts_on and "ends_on" not in errors:
            clash = Subscription.objects.overlapping(self).first()
            if clash is not None:
                errors["starts_on"] = plan_rules.overlap_error(self, clash)
        if errors:
            raise ValidationError(errors)


class Statement(models.Model):
    """What a tenant owes for one calendar month: a draft while the month is open
    (refreshed after each rollup), final and immutable once it has closed."""

    Status = choices.StatementStatus

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="statements")
    period = models.DateField(help_text="The first day of the month.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    currency = models.CharField(max_length=3)
    base_fee = models.DecimalField(max_digits=16, decimal_places=3)
    usage_amount = models.DecimalField(max_digits=20, decimal_places=3)
    minimum_commitment = models.DecimalField(
        max_digits=16,
        decimal_places=3,
        default=Decimal("0"),
        help_text="The plans' minimum commitment for the month, prorated by day per segment.",
    )
    true_up = models.DecimalField(
        max_digits=16,
        decimal_places=3,
        default=Decimal("0"),
        help_text="What brings base fee and lines up to the minimum commitment.",
    )
    total = models.DecimalField(max_digits=20, decimal_places=3)
    as_of = models.DateTimeField(help_text="Usage up to this moment is in the statement.")
    finalized_at = models.DateTimeField(null=True, blank=True)
    number = models.CharField(  # noqa: DJ001 - null: drafts have none, and many may
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text="Given once, when the statement becomes final: <YYYY-MM>-<id>, "
        "e.g. 2025-03-000042.",
    )
    mailed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the final statement was mailed to its customer's managers; set "
        "once, so it is mailed once.",
    )

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-period", "tenant"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "period"],
                name="statement_once_per_period",
                violation_error_message="This tenant already has a statement for that month.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period:%Y-%m} ({self.status})"


class StatementLine(models.Model):
    """One meter of one subscription in the period, rated; `amount` is rounded once."""

    statement = models.ForeignKey(Statement, on_delete=models.CASCADE, related_name="lines")
    meter = models.ForeignKey(Meter, on_delete=models.PROTECT, related_name="+")
    dimension = models.CharField(max_length=256, null=True, blank=True)  # noqa: DJ001
    charge_model = models.CharField(
        max_length=16, choices=choices.ChargeModel.choices, default=choices.ChargeModel.GRADUATED
    )
    plan_code = models.CharField(max_length=64)
    starts_on = models.DateField()
    ends_on = models.DateField()
    used = models.DecimalField(max_digits=38, decimal_places=6)
    included = models.DecimalField(max_digits=20, decimal_places=6)
    overage = models.DecimalField(max_digits=38, decimal_places=6)
    unit_price = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    # The tiers applied: [{from, to, units, unit_price, flat_fee, amount}], amounts unrounded.
    tiers = models.JSONField(default=list, blank=True)
    amount = models.DecimalField(max_digits=20, decimal_places=3)

    class Meta:
        ordering = [
            "statement",
            "starts_on",
            "meter__category",
            "meter__code",
            F("dimension").asc(nulls_last=True),
        ]

    def __str__(self) -> str:
        return f"{self.meter.code}: {self.amount}"


class UsageAlert(models.Model):
    """A threshold of a subscribed plan item crossed in a period; raised once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="usage_alerts")
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="alerts")
    plan_item = models.ForeignKey(PlanItem, on_delete=models.CASCADE, related_name="alerts")
    percent = models.PositiveSmallIntegerField(help_text="The threshold crossed, in percent.")
    period = models.DateField(help_text="The first day of the month.")
    usage = models.DecimalField(max_digits=28, decimal_places=6)
    base = models.DecimalField(
        max_digits=20, decimal_places=6, help_text="The limit or included quantity."
    )
    raised_at = models.DateTimeField(auto_now_add=True)
    notified_to = models.TextField(blank=True, default="")

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "plan_item", "percent", "period"],
                name="usage_alert_once",
                violation_error_message="This threshold was already raised for that plan item "
                "and month.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.plan_item.meter.code} {self.percent}% {self.period:%Y-%m}"


class TenantFailure(models.Model):
    """A tenant whose statement, finalization, alert check or mail failed in the last
    run that tried it. The run went on for every other tenant; the next run tries
    this one again and removes the record once it succeeds."""

    Job = choices.FailedJob

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="failures")
    job = models.CharField(max_length=16, choices=Job.choices)
    error = models.TextField(help_text="The exception, as the operator needs it to fix the cause.")
    attempts = models.PositiveIntegerField(default=1)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField()

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-last_failed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "job"],
                name="tenant_failure_once_per_job",
                violation_error_message="A failure of this job is already recorded for this "
                "tenant.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.job} failing since {self.first_failed_at:%Y-%m-%d %H:%M}"
