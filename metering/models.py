"""The meter catalog and the telemetry records (usage events) measured against it."""

from django.core.exceptions import ValidationError
from django.db import connections, models
from django.db.models.lookups import In
from django.utils import timezone

from accounts.models import ScopedQuerySet, Tenant, restrict_to, subtrees_q, visibility_q


class Meter(models.Model):
    class Category(models.TextChoices):
        PROCESSING = "processing", "Processing"
        STORAGE = "storage", "Storage"
        BANDWIDTH = "bandwidth", "Bandwidth"
        LICENSES = "licenses", "Licenses"
        PORTALS = "portals", "Portals"
        COMMUNICATIONS = "communications", "Communications"

    class Unit(models.TextChoices):
        PU = "PU", "Processing units"
        SU = "SU", "Storage units"
        BU = "BU", "Bandwidth units"
        BYTES = "bytes", "Bytes"
        MS = "ms", "Milliseconds"
        COUNT = "count", "Count"
        MINUTES = "minutes", "Minutes"
        PAGES = "pages", "Pages"

    class Aggregation(models.TextChoices):
        SUM = "sum", "Sum of quantities"
        COUNT = "count", "Number of events"
        MAX = "max", "Highest value (gauge)"
        LATEST = "latest", "Latest value (gauge)"
        UNIQUE_COUNT = "unique_count", "Distinct values of an attribute"

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    category = models.CharField(max_length=16, choices=Category.choices)
    unit = models.CharField(max_length=8, choices=Unit.choices)
    aggregation = models.CharField(max_length=16, choices=Aggregation.choices)
    group_by = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Attribute key that breaks this meter down (e.g. activity, tier).",
    )
    unique_key = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="Attribute whose distinct values a unique_count meter counts.",
    )
    description = models.TextField(blank=True, default="")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["category", "code"]

    def __str__(self) -> str:
        return f"{self.name} ({self.unit})"

    def clean(self):
        super().clean()
        if self.aggregation == self.Aggregation.UNIQUE_COUNT and not self.unique_key:
            raise ValidationError(
                {"unique_key": "A unique_count meter needs the attribute to count."}
            )


class Unindexed(models.Func):
    """A column the planner may not look up through an index (`+column`)."""

    template = "(+%(expressions)s)"
    arity = 1


class Rare(models.Func):
    """A condition the planner is to take as true for one row in a thousand (SQLite's
    `likelihood()`); it may still look it up through an index. `unlikely()` (one in
    16) was not enough for a list without a LIMIT, as the admin's when it fits on
    one page: a sixteenth of some meters' share of the events seemed more to sort
    than every event to walk in order (86 s at 10M)."""

    template = "likelihood(%(expressions)s, 0.001)"
    arity = 1
    output_field = models.BooleanField()


class UsageEventQuerySet(ScopedQuerySet):
    """Events restricted to subtrees in the form that keeps newest-first lists fast.

    The rule is the one of `visibility_q` and `subtrees_q`; only its SQL differs:
    the subtree's tenant ids in a subquery. On SQLite that alone still led the
    planner to read every event of every tenant below through the (tenant,
    occurred_at) index and sort them all for a page of 100 (seconds for a
    reseller at 1M events). So on SQLite a subtree holding many events is matched
    without that index: the list walks the time index (or the meter's) newest
    first and stops after a page, reading about page × (table / subtree) rows; a
    subtree holding few events keeps the index, and sorting those few is cheap.
    PostgreSQL weighs both plans from its statistics and needs no hint (the hint
    would hide the subtree's share from it).
    """

    # Below this share of the table the events of a subtree, or of several meters, are
    # read through their own index (and sorted).
    FEW = 1 / 1000
    FEW_AT_LEAST = 10_000

    def visible_to(self, principal):
        condition = visibility_q(principal)
        if condition is True or condition is False:
            return restrict_to(self, condition)
        return self.in_tenants(Tenant.objects.filter(condition))

    def within(self, tenant: Tenant):
        """Events of `tenant` and every tenant below it."""
        return self.in_tenants(Tenant.objects.filter(subtrees_q([tenant])))

    def of_meters(self, **meter_lookup):
        """Events of the meters matching `meter_lookup` (code=…, category=…), by their
        ids: through a join PostgreSQL guesses a sixth of the events match and reads
        them all; with the ids its statistics know a meter nobody sends has none.

        SQLite's statistics give every meter the same share of the events, so given
        several ids it walks the time index newest first to fill a page, through
        every event when those meters have few or none (25 s at 10M for a category
        nobody sends). Told the condition is rare, it reads every event of those
        meters through the (meter, occurred_at) index and sorts them: cheap for a
        few, but 30 s at 10M for a category one of whose meters sends a fifth of
        the events. So the hint is given only when the meters hold few events
        (counted through their index, as a subtree's); meters holding many are
        matched plainly and the time index is walked until the page is full. One id
        needs neither: its index alone gives the order."""
        ids = list(Meter.objects.filter(**meter_lookup).values_list("pk", flat=True))
        if (
            connections[self.db].vendor == "sqlite"
            and len(ids) > 1
            and self.holds_few(meter_id__in=ids)
        ):
            return self.filter(Rare(In(models.F("meter_id"), ids)))
        return self.filter(meter_id__in=ids)

    def in_tenants(self, tenants):
        ids = tenants.order_by().values("pk")
        if connections[self.db].vendor != "sqlite" or self.holds_few(tenant_id__in=ids):
            return self.filter(tenant_id__in=ids)
        return self.filter(In(Unindexed("tenant_id"), ids))

    def holds_few(self, **lookup) -> bool:
        """Whether the events matching `lookup` (some tenants', some meters') are few:
        counted through their index, never further than the threshold."""
        events = UsageEvent.objects.using(self.db).order_by()
        top = events.aggregate(top=models.Max("id"))["top"] or 0
        few = max(self.FEW_AT_LEAST, int(top * self.FEW))
        return events.filter(**lookup)[:few].count() < few


class UsageEvent(models.Model):
    """One telemetry record. Immutable: corrections are new events."""

    class Source(models.TextChoices):
        API = "api", "API"
        USER = "user", "User"
        SERVICE = "service", "Service"

    # The client's idempotency key, unique per tenant (a constraint below): one
    # tenant's ids can never collide with, or reveal, another's.
    event_id = models.CharField(max_length=128)
    # No index of their own: the (tenant, occurred_at) and (meter, occurred_at)
    # indexes lead with them and serve every lookup by tenant or meter.
    tenant = models.ForeignKey(
        Tenant, on_delete=models.PROTECT, related_name="usage_events", db_index=False
    )
    meter = models.ForeignKey(
        Meter, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    quantity = models.DecimalField(max_digits=20, decimal_places=6)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.API)
    # The value of the meter's group_by attribute, kept apart so rollups can group by it.
    dimension = models.CharField(max_length=256, blank=True, default="")
    attributes = models.JSONField(default=dict, blank=True)

    objects = UsageEventQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "occurred_at"], name="event_tenant_time"),
            models.Index(fields=["meter", "occurred_at"], name="event_meter_time"),
            models.Index(fields=["occurred_at"], name="event_time"),
            models.Index(fields=["received_at"], name="event_received"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="event_tenant_event_id")
        ]

    def __str__(self) -> str:
        return self.event_id

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValidationError("Usage events are immutable; record a correction instead.")
        super().save(*args, **kwargs)


class EventDayLog(models.Model):
    """Which UTC days each insert into the event table wrote to, with its events'
    first and last id: one row per statement and day, written by a trigger in the
    same transaction (PostgreSQL; see migration 0007).

    The rollup finds the days new events fell on here, instead of reading every
    new event (for a day of ingestion that search cost a quarter of reading the
    day itself). A row counts for every event id from `first_id` to `last_id`:
    a range that straddles a watermark makes its day dirty on both sides of it,
    never neither. Rows whose events are all below the billing watermark are
    deleted by the next run. SQLite and a ClickHouse deployment leave it empty.
    """

    day = models.DateField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    events = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.events} event(s) on {self.day} (ids {self.first_id}–{self.last_id})"


class EventBatch(models.Model):
    """One ingested batch of an event store without ids of its own (ClickHouse).

    The batch's id, handed out by this database, is what the rollup's watermark
    counts in that store: every event carries its batch's id, a batch is open
    while its events are being written and committed with them, so the events
    up to a watermark are exactly those of the committed batches up to it. A
    batch whose writer died or failed is abandoned: its events, if any reached
    the store, are left out of every read and deleted.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        COMMITTED = "committed", "Committed"
        ABANDONED = "abandoned", "Abandoned"
        PURGED = "purged", "Abandoned, events deleted"

    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    events = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["state", "id"], name="event_batch_state")]

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.state})"


class EventKey(models.Model):
    """The idempotency ledger of an event store that cannot refuse a duplicate
    itself (ClickHouse): one row per stored (tenant, event id), kept only while an
    event of that day may still arrive (USAGE_BACKDATE_DAYS), since an older
    event is refused anyway."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, db_index=False)
    event_id = models.CharField(max_length=128)
    day = models.DateField()
    batch = models.ForeignKey(EventBatch, on_delete=models.CASCADE, db_index=False)

    class Meta:
        indexes = [models.Index(fields=["day"], name="event_key_day")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "event_id"], name="event_key_tenant_event")
        ]

    def __str__(self) -> str:
        return self.event_id


class EventMove(models.Model):
    """The move of a deployment's events from the relational table into ClickHouse
    (`manage.py move_events_to_clickhouse`): one row, from its first run on, and
    afterwards its record. The billing watermarks are translated once, when the
    last range is moved; `finished_at` says that happened."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    events = models.BigIntegerField(default=0)
    # The billing table's watermark before the move (an event id) and after (a batch id).
    watermark_before = models.BigIntegerField(null=True, blank=True)
    watermark_after = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return f"event move of {self.started_at:%Y-%m-%d}"


class MovedRange(models.Model):
    """Events `first_id` to `last_id` of the relational table, moved into ClickHouse
    as one batch. Recorded with its batch before the events are sent, so a move
    killed half way knows which batch and range to finish: the range is done
    when its batch is committed."""

    batch = models.OneToOneField(
        EventBatch, on_delete=models.CASCADE, primary_key=True, related_name="moved_range"
    )
    first_id = models.BigIntegerField()
    # Unique, and so indexed: where the move stands, and what a watermark becomes.
    last_id = models.BigIntegerField(unique=True)

    def __str__(self) -> str:
        return f"events {self.first_id}–{self.last_id} in batch {self.batch_id}"

    def token(self) -> str:
        """The insert's deduplication token: the same for every attempt at this batch,
        so ClickHouse drops whatever part of an earlier attempt it already stored."""
        return f"usage-move-{self.batch_id}-{self.first_id}-{self.last_id}"
