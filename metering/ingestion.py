"""Ingestion: validate a batch of usage events, then store it whole or not at all.

The rules an event must satisfy live here once, for the API and the `ingest`
command alike. A batch with any invalid event is rejected with every error
(index, field, reason) and nothing is stored; events whose `event_id` is
already stored for the same tenant are acknowledged as duplicates and not
stored again. Who may send usage for a tenant, and who may correct it, is
decided here too.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from operator import attrgetter
from typing import NamedTuple

from django.conf import settings
from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.db.models import F, Lookup, Min, Q
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from metering.models import EventBatch, Meter, UsageEvent
from metering.signals import events_stored
from utilities.text import text_problem

MAX_BATCH = 10_000
MAX_BODY_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
MAX_EVENT_ID = 128
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_VALUE = 256
FUTURE_TOLERANCE = timedelta(minutes=5)
QUANTITY_PLACES = 6
QUANTITY_LIMIT = Decimal(10) ** (20 - QUANTITY_PLACES)
QUANTUM = Decimal(1).scaleb(-QUANTITY_PLACES)
EVENT_FIELDS = {"event_id", "tenant", "meter", "quantity", "timestamp", "source", "attributes"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")
# Rows per INSERT statement: 9 columns keeps each well under SQLite's variable limit.
INSERT_CHUNK = 1000
LOOKUP_CHUNK = 2000
# Any fixed number: inserting transactions hold this PostgreSQL advisory lock shared,
# `committed_ceiling` takes it exclusively for an instant.
INGEST_GATE_ID = 715_2002
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE
SOURCES = frozenset(UsageEvent.Source.values)
SOURCE_ERROR = f"Must be one of {', '.join(UsageEvent.Source.values)}."


class EventRow(NamedTuple):
    """A valid event, ready to insert: the event table's columns. The insert path
    reads these attribute names, so a UsageEvent (the demo's) goes through it too;
    a row is a tuple because building ten thousand model instances per batch cost
    more than inserting them."""

    event_id: str
    tenant_id: int
    meter_id: int
    quantity: Decimal
    occurred_at: datetime
    received_at: datetime
    source: str
    dimension: str
    attributes: dict


class TenantRef(NamedTuple):
    """What validating an event needs of its tenant."""

    pk: int
    is_active: bool


@dataclass
class EventError:
    message: str
    field: str | None = None
    index: int | None = None

    def as_dict(self) -> dict:
        error = {"message": self.message}
        if self.index is not None:
            error["index"] = self.index
        if self.field:
            error["field"] = self.field
        return error


class BatchRejected(Exception):
    """The batch is invalid; nothing was stored."""

    def __init__(self, errors: list[EventError]):
        super().__init__(f"{len(errors)} invalid event(s)")
        self.errors = errors


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0


def ingest_events(events, *, principal, now: datetime | None = None) -> IngestResult:
    """Validate and store a batch; raises BatchRejected with every error found."""
    rows = validate_batch(events, principal=principal, now=now)
    return store_events(rows)


def validate_batch(events, *, principal, now: datetime | None = None) -> list[EventRow]:
    """Every event checked against the rules; rows to insert, or BatchRejected."""
    if not isinstance(events, list):
        raise BatchRejected([EventError("Expected a list of event objects.", "events")])
    if not events:
        raise BatchRejected([EventError("The batch is empty: send at least one event.", "events")])
    if len(events) > MAX_BATCH:
        raise BatchRejected(
            [EventError(f"At most {MAX_BATCH:,} events per batch; got {len(events):,}.", "events")]
        )
    rows, errors = validate_events(events, principal=principal, now=now)
    if errors:
        raise BatchRejected(errors)
    return rows


def validate_events(
    events: list, *, principal, now: datetime | None = None
) -> tuple[list[EventRow], list[EventError]]:
    """Each event checked on its own: the valid ones, and errors naming the others."""
    context = BatchContext(events, principal=principal, now=now or timezone.now())
    rows, errors = [], []
    for index, raw in enumerate(events):
        event, event_errors = context.validate(raw)
        for error in event_errors:
            error.index = index
        errors.extend(event_errors)
        if event is not None:
            rows.append(event)
    return rows, errors


def count_stored(keys: list[tuple[int, str]]) -> int:
    """How many of these (tenant id, event id) pairs are already stored (for dry runs)."""
    from metering.stores import event_store

    return event_store().count_stored(keys)


def count_stored_in_table(keys: list[tuple[int, str]]) -> int:
    by_tenant: dict[int, list[str]] = {}
    for tenant_id, event_id in keys:
        by_tenant.setdefault(tenant_id, []).append(event_id)
    found = 0
    for tenant_id, event_ids in by_tenant.items():
        for start in range(0, len(event_ids), LOOKUP_CHUNK):
            chunk = event_ids[start : start + LOOKUP_CHUNK]
            found += UsageEvent.objects.filter(tenant_id=tenant_id, event_id__in=chunk).count()
    return found


class BatchContext:
    """What validating one batch needs, looked up once: tenants, meters, the clock."""

    def __init__(self, events: list, *, principal, now: datetime):
        self.principal = principal
        self.now = now
        self.received_at = now
        self.oldest = now - timedelta(days=settings.USAGE_BACKDATE_DAYS)
        self.newest = now + FUTURE_TOLERANCE
        self.meters = {m.code: m for m in Meter.objects.filter(is_active=True)}
        refs = {
            e.get("tenant")
            for e in events
            if isinstance(e, dict) and isinstance(e.get("tenant"), str)
        }
        self.tenants = resolve_tenants(
            {r for r in refs if isinstance(r, str) and r}, principal=principal
        )
        self.writable = writable_tenant_ids(principal)

    def may_correct(self) -> bool:
        """Negative corrections lower the bills of every subscribed tenant above the
        event, so only the platform operator or a key granted `correct` sends them."""
        return principal_may_correct(self.principal)

    def validate(self, raw) -> tuple[EventRow | None, list[EventError]]:
        if not isinstance(raw, dict):
            return None, [EventError("Each event must be a JSON object.")]
        errors = [EventError("Unknown field.", name) for name in sorted(set(raw) - EVENT_FIELDS)]
        event_id = check_event_id(raw.get("event_id"), errors)
        tenant = self.check_tenant(raw.get("tenant"), errors)
        meter = self.check_meter(raw.get("meter"), errors)
        quantity = check_quantity(raw.get("quantity"), errors)
        occurred_at = self.check_timestamp(raw.get("timestamp"), errors)
        source = check_source(raw.get("source", UsageEvent.Source.API), errors)
        attributes = check_attributes(raw.get("attributes", {}), errors)
        if meter is not None and attributes is not None:
            check_meter_attributes(meter, attributes, errors)
        if quantity is not None and quantity < 0 and meter is not None and tenant is not None:
            self.check_correction(meter, attributes or {}, errors)
        if errors:
            return None, errors
        return (
            EventRow(
                event_id,
                tenant.pk,
                meter.pk,
                quantity,
                occurred_at,
                self.received_at,
                source,
                attributes.get(meter.group_by, "") if meter.group_by else "",
                attributes,
            ),
            [],
        )

    def check_tenant(self, value, errors) -> TenantRef | None:
        if value is None or value == "":
            errors.append(EventError("Required: the tenant's slug or external id.", "tenant"))
            return None
        if not isinstance(value, str):
            errors.append(EventError("Must be a string (slug or external id).", "tenant"))
            return None
        if problem := text_problem(value):
            errors.append(EventError(problem, "tenant"))
            return None
        tenant = self.tenants.get(value)
        if tenant is None:
            # The same answer for "does not exist" and "not yours": nothing leaks.
            errors.append(EventError(f"Unknown tenant {value!r}.", "tenant"))
        elif not tenant.is_active:
            errors.append(EventError(f"Tenant {value!r} is inactive.", "tenant"))
            return None
        elif self.writable is not None and tenant.pk not in self.writable:
            errors.append(
                EventError(
                    f"You may read {value!r} but not send its usage: that takes the manager "
                    "or admin role, or an API key with the ingest scope.",
                    "tenant",
                )
            )
            return None
        return tenant

    def check_meter(self, value, errors) -> Meter | None:
        if value is None or value == "":
            errors.append(EventError("Required: a meter code (see /api/v1/meters/).", "meter"))
            return None
        meter = self.meters.get(value) if isinstance(value, str) else None
        if meter is None:
            errors.append(EventError(f"Unknown meter {value!r}.", "meter"))
        return meter

    def check_timestamp(self, value, errors) -> datetime | None:
        if value is None:
            return self.now
        if not isinstance(value, str) or not RFC3339.match(value):
            errors.append(
                EventError(
                    "Use an RFC 3339 timestamp with a zone, e.g. 2026-11-25T08:30:00Z.",
                    "timestamp",
                )
            )
            return None
        try:
            occurred_at = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        except ValueError:
            errors.append(EventError("Not a valid date and time.", "timestamp"))
            return None
        if occurred_at > self.newest:
            errors.append(
                EventError("In the future: at most 5 minutes ahead of the server.", "timestamp")
            )
        elif occurred_at < self.oldest:
            errors.append(
                EventError(
                    f"Older than {settings.USAGE_BACKDATE_DAYS} days; too late to record.",
                    "timestamp",
                )
            )
        return occurred_at

    def check_correction(self, meter, attributes, errors) -> None:
        if meter.aggregation != Meter.Aggregation.SUM:
            errors.append(
                EventError(
                    f"Negative quantities are only allowed for summed meters; {meter.code} "
                    f"is aggregated by {meter.aggregation}.",
                    "quantity",
                )
            )
        elif not self.may_correct():
            errors.append(
                EventError(
                    "Negative corrections come only from the platform operator or an API key "
                    "with the correct scope.",
                    "quantity",
                )
            )
        elif not attributes.get("reason", "").strip():
            errors.append(
                EventError("A negative correction needs a 'reason' attribute.", "attributes.reason")
            )


def writable_tenant_ids(principal) -> set[int] | None:
    """The tenants whose usage a principal may send; None: every tenant it may see.

    API keys reach ingestion only with the ingest scope (the view's permission),
    so a key writes wherever it reads; users need the manager or admin role.
    """
    if getattr(principal, "is_superuser", False):
        return None
    if getattr(principal, "scope_tenant", None) is not None:
        return None
    return set(Tenant.objects.managed_by(principal).values_list("pk", flat=True))


def principal_may_correct(principal) -> bool:
    if getattr(principal, "is_superuser", False):
        return True
    api_key = getattr(principal, "api_key", None)
    return api_key is not None and api_key.has_scope(ApiKey.Scope.CORRECT)


class AnyOf(Lookup):
    """`column IN (…)` over a list of strings, for the long lists of a batch (its
    tenant references). PostgreSQL gets the list as one array parameter: with a
    placeholder per value, splitting and quoting the statement in the client took
    ten times as long as the server took to answer it."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", (*params, *self.rhs)

    def as_postgresql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*params, self.rhs)


def resolve_tenants(refs: set[str], *, principal) -> dict[str, TenantRef]:
    """Map slugs and external ids to the tenants the principal may see.

    Slugs and external ids share one namespace (enforced on every tenant write),
    so a reference names one tenant; should stored data ever disagree, a slug
    wins over an external id and an ambiguous external id resolves to nothing.
    """
    visible = Tenant.objects.visible_to(principal)
    by_slug: dict[str, TenantRef] = {}
    by_external: dict[str, list[TenantRef]] = {}
    refs_list = sorted(refs)
    columns = ("pk", "slug", "external_id", "is_active")
    for start in range(0, len(refs_list), LOOKUP_CHUNK):
        chunk = refs_list[start : start + LOOKUP_CHUNK]
        found = visible.filter(Q(AnyOf(F("slug"), chunk)) | Q(AnyOf(F("external_id"), chunk)))
        found = found.order_by()
        for pk, slug, external_id, is_active in found.values_list(*columns):
            tenant = TenantRef(pk, is_active)
            if slug in refs:
                by_slug[slug] = tenant
            if external_id in refs:
                by_external.setdefault(external_id, []).append(tenant)
    found = {ref: tenants[0] for ref, tenants in by_external.items() if len(tenants) == 1}
    found.update(by_slug)
    return found


def check_event_id(value, errors) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append(EventError("Required: a non-empty string, unique per event.", "event_id"))
        return None
    if len(value) > MAX_EVENT_ID:
        errors.append(EventError(f"At most {MAX_EVENT_ID} characters.", "event_id"))
        return None
    if problem := text_problem(value):
        errors.append(EventError(problem, "event_id"))
        return None
    return value


def parse_quantity(value) -> Decimal:
    """A finite Decimal from a JSON number or a decimal string, or ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError("Required: a number or a decimal string.")
    if isinstance(value, float):
        value = repr(value)
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, Decimal):
        quantity = value
    elif isinstance(value, str):
        try:
            quantity = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("Not a number.") from None
    else:
        raise ValueError("Required: a number or a decimal string.")
    if not quantity.is_finite():
        raise ValueError("Must be a finite number (no NaN or Infinity).")
    # copy_abs, not abs(): abs() rounds in the context and overflows on 1e999999999.
    if quantity.copy_abs() >= QUANTITY_LIMIT:
        raise ValueError(f"Too large: at most {20 - QUANTITY_PLACES} digits before the point.")
    rounded = quantity.quantize(QUANTUM)
    if rounded != quantity:
        raise ValueError(f"At most {QUANTITY_PLACES} decimal places.")
    return rounded


def check_quantity(value, errors) -> Decimal | None:
    try:
        return parse_quantity(value)
    except ValueError as error:
        errors.append(EventError(str(error), "quantity"))
        return None


def check_source(value, errors) -> str | None:
    if not isinstance(value, str) or value not in SOURCES:
        errors.append(EventError(SOURCE_ERROR, "source"))
        return None
    return value


def check_attributes(value, errors) -> dict | None:
    if not isinstance(value, dict):
        errors.append(EventError("Must be an object of string keys and values.", "attributes"))
        return None
    if len(value) > MAX_ATTRIBUTES:
        errors.append(EventError(f"At most {MAX_ATTRIBUTES} attributes.", "attributes"))
        return None
    ok = True
    for key, item in value.items():
        if not key or len(key) > MAX_ATTRIBUTE_KEY:
            errors.append(
                EventError(f"Keys are 1 to {MAX_ATTRIBUTE_KEY} characters.", "attributes")
            )
            ok = False
        elif problem := text_problem(key):
            errors.append(EventError(f"Key {key!r}: {problem}", "attributes"))
            ok = False
        elif not isinstance(item, str):
            errors.append(EventError("Values must be strings.", f"attributes.{key}"))
            ok = False
        elif len(item) > MAX_ATTRIBUTE_VALUE:
            errors.append(
                EventError(f"At most {MAX_ATTRIBUTE_VALUE} characters.", f"attributes.{key}")
            )
            ok = False
        elif problem := text_problem(item):
            errors.append(EventError(problem, f"attributes.{key}"))
            ok = False
    return value if ok else None


def check_meter_attributes(meter: Meter, attributes: dict, errors) -> None:
    if meter.unique_key and not attributes.get(meter.unique_key):
        errors.append(
            EventError(
                f"Meter {meter.code} counts distinct {meter.unique_key!r} values; "
                "give it as an attribute.",
                f"attributes.{meter.unique_key}",
            )
        )


def row_adapter(conn) -> tuple[tuple[str, ...], Callable]:
    """The inserted columns, and row -> their database values.

    The same conversions Django's fields apply on save (`get_db_prep_save`),
    resolved once per batch instead of once per value: the per-value field
    machinery cost ten times the INSERT itself on large batches. The columns
    that go as they are come out of the row in one read; a call per column and
    row was half the client's time of a COPY.
    """
    ops = conn.ops
    attributes = UsageEvent._meta.get_field("attributes")
    instant = instant_adapter(conn)
    conversions = {
        "quantity": lambda value: ops.adapt_decimalfield_value(value, 20, QUANTITY_PLACES),
        "occurred_at": instant,
        "received_at": instant,
        "attributes": lambda value: attributes.get_db_prep_save(value, conn),
    }
    columns = EventRow._fields
    read = attrgetter(*columns)
    converted = [(i, conversions[c]) for i, c in enumerate(columns) if c in conversions]

    def values(row) -> list:
        out = list(read(row))
        for i, convert in converted:
            out[i] = convert(out[i])
        return out

    return columns, values


def instant_adapter(conn):
    """`adapt_datetimefield_value` of the connection, without Django's per-value checks
    where they are known to hold: SQLite stores an aware UTC instant as its naive
    UTC text (the same text Django writes); otherwise Django's own adapter."""
    if conn.vendor == "sqlite" and settings.USE_TZ and conn.timezone == UTC:
        return lambda value: str(value.astimezone(UTC).replace(tzinfo=None))
    return conn.ops.adapt_datetimefield_value


def store_events(rows: list[EventRow | UsageEvent]) -> IngestResult:
    """Store the batch whole or not at all, in the configured event store; an event
    id already stored for the same tenant counts as a duplicate."""
    from metering.stores import event_store  # the stores build on this module

    return event_store().store(rows)


def store_in_table(rows: list[EventRow | UsageEvent]) -> IngestResult:
    """Insert the batch into the event table in one transaction; an event id already
    stored for the same tenant counts as a duplicate."""
    inserted: list[tuple[int, str]] = []
    # Writers racing on the same keys wait for each other's uncommitted rows; taking
    # them in one global order means they can never wait in a circle.
    rows = sorted(rows, key=lambda row: (row.tenant_id, row.event_id))
    with transaction.atomic():
        enter_ingest_gate()
        for start in range(0, len(rows), INSERT_CHUNK):
            inserted.extend(insert_new_events(rows[start : start + INSERT_CHUNK]))
        announce_stored(rows, inserted)
    return IngestResult(accepted=len(inserted), duplicates=len(rows) - len(inserted))


def enter_ingest_gate() -> None:
    """Mark this transaction as one that inserts events (until it ends)."""
    conn = connections[router.db_for_write(UsageEvent)]
    if conn.vendor == "postgresql":
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [INGEST_GATE_ID])


def committed_ceiling(wait_seconds: float = 2.0) -> int | None:
    """The highest event id such that every event with a lower id is committed:
    no event with an id up to it can still appear. None if that could not be
    established within `wait_seconds` (a long insert held the gate).

    PostgreSQL hands out ids when a row is inserted, not when it commits, so the
    highest visible id can sit above an id still in flight. Every inserting
    transaction holds the ingest gate shared; taking it exclusively waits for
    those in flight to end and holds new ones back while the highest id is read.
    SQLite has one writer at a time (IMMEDIATE transactions) whose ids all lie
    above every committed one: the highest committed id is the ceiling.
    """
    table = connections[router.db_for_write(UsageEvent)].ops.quote_name(UsageEvent._meta.db_table)
    return read_behind_gate(f"SELECT COALESCE(MAX(id), 0) FROM {table}", wait_seconds)


def committed_batch_ceiling(wait_seconds: float = 2.0) -> int:
    """For an event store positioned by batch (EventBatch): the highest batch id
    below which no batch is still open. Batch ids are taken under the ingest gate,
    so behind it every id handed out is visible. If the gate cannot be had in
    time, batches opened in the last COMMIT_GRACE are taken as still in flight."""
    table = EventBatch._meta.db_table
    # One statement: both figures from the same snapshot.
    sql = (
        f"SELECT (SELECT MIN(id) FROM {table} WHERE state = 'open'), "
        f"(SELECT COALESCE(MAX(id), 0) FROM {table} WHERE state = 'committed')"
    )
    row = read_behind_gate(sql, wait_seconds, whole_row=True)
    if row is None:
        young = EventBatch.objects.filter(created_at__gt=timezone.now() - COMMIT_GRACE)
        oldest_young = young.aggregate(low=Min("id"))["low"]
        with connections[router.db_for_write(EventBatch)].cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
        if oldest_young is not None:
            row = (min(row[0] or oldest_young, oldest_young), row[1])
    lowest_open, top = row
    return top if lowest_open is None else min(top, lowest_open - 1)


# Where the exact ceiling cannot be had in time, what counts as possibly in flight.
COMMIT_GRACE = timedelta(seconds=10)


def read_behind_gate(sql: str, wait_seconds: float, whole_row: bool = False):
    """Run `sql` with no ingesting transaction in flight (see committed_ceiling);
    None if the gate could not be had within `wait_seconds`."""
    conn = connections[router.db_for_write(UsageEvent)]
    if conn.vendor != "postgresql":
        with conn.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
            return row if whole_row else row[0]
    try:
        with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
            cursor.execute("SELECT current_setting('lock_timeout')")
            previous = cursor.fetchone()[0]
            timeout = f"{max(1, int(wait_seconds * 1000))}ms"
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INGEST_GATE_ID])
            # Inside a caller's transaction the setting would outlive this block.
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
            cursor.execute(sql)
            row = cursor.fetchone()
            return row if whole_row else row[0]
    except OperationalError:
        return None


def announce_stored(rows: list[UsageEvent], inserted: list[tuple[int, str]]) -> None:
    """Tell listeners (limits and alerts) which tenants and meters got new usage."""
    if not inserted:
        return
    new = set(inserted)
    stored = [row for row in rows if (row.tenant_id, row.event_id) in new]
    tenant_ids = {row.tenant_id for row in stored}
    meter_ids = {row.meter_id for row in stored}
    transaction.on_commit(
        lambda: events_stored.send(sender=UsageEvent, tenant_ids=tenant_ids, meter_ids=meter_ids)
    )


def insert_new_events(rows: list[EventRow | UsageEvent]) -> list[tuple[int, str]]:
    """Insert the rows whose (tenant, event_id) is not stored yet; returns the keys
    inserted. The unique (tenant, event_id) index decides what is a duplicate, also
    against a concurrent writer, and a duplicate inside the batch is skipped the
    same way (the first occurrence is stored)."""
    conn = connections[router.db_for_write(UsageEvent)]
    if conn.vendor == "postgresql":
        return copy_new_events(conn, rows)
    return insert_skipping_stored(conn, rows)


def copy_new_events(conn, rows: list[EventRow | UsageEvent]) -> list[tuple[int, str]]:
    """PostgreSQL: COPY straight into the event table, in a savepoint, and only when a
    key turns out to be stored already take the path that skips duplicates.

    COPY is the database's own bulk load (rows written a page at a time), while
    `INSERT … ON CONFLICT` inserts row by row, each after a speculative probe of the
    unique index; a batch cost the server two to three times as much that way.
    Duplicates are the exception (a client retrying a batch), so the common batch
    pays for COPY alone and a retried one for a COPY given up plus the old path.
    The unique index still decides: a COPY meeting a key that another transaction
    has inserted waits for it like an INSERT, and fails if that one commits.
    """
    fresh, seen = [], set()
    for row in rows:
        key = (row.tenant_id, row.event_id)
        if key not in seen:
            seen.add(key)
            fresh.append(row)
    columns, values = row_adapter(conn)
    copy = (
        f"COPY {conn.ops.quote_name(UsageEvent._meta.db_table)} ({', '.join(columns)}) FROM STDIN"
    )
    try:
        with (
            transaction.atomic(using=conn.alias),
            conn.wrap_database_errors,
            conn.cursor() as cursor,
            cursor.cursor.copy(copy) as stream,
        ):
            for row in fresh:
                stream.write_row(values(row))
    except IntegrityError as error:
        if getattr(error.__cause__, "sqlstate", None) != UNIQUE_VIOLATION:
            raise
        return insert_skipping_stored(conn, rows)
    return [(row.tenant_id, row.event_id) for row in fresh]


def insert_skipping_stored(conn, rows: list[EventRow | UsageEvent]) -> list[tuple[int, str]]:
    """INSERT … ON CONFLICT DO NOTHING RETURNING (tenant, event_id), in one statement.

    Raw SQL because the ORM's bulk_create cannot say which rows a conflict
    skipped; this counts duplicates exactly, also against a concurrent writer.
    The conflict target is left implicit: that key is the table's only unique
    constraint besides the primary key, and an implicit target keeps ingestion
    working while a migration swaps the constraint. PostgreSQL gets the rows by
    COPY into a temporary table (see copy_batch); SQLite ≥ 3.35 a multi-row
    VALUES list.
    """
    columns, values = row_adapter(conn)
    table = conn.ops.quote_name(UsageEvent._meta.db_table)
    returning = ", ".join(conn.ops.quote_name(c) for c in ("tenant_id", "event_id"))
    names = ", ".join(conn.ops.quote_name(c) for c in columns)
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            copy_batch(cursor, conn, rows, columns, values)
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {BATCH_TABLE} "
                f"ORDER BY position ON CONFLICT DO NOTHING RETURNING {returning}"
            )
        else:
            placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {', '.join([placeholders] * len(rows))} "
                f"ON CONFLICT DO NOTHING RETURNING {returning}",
                [value for row in rows for value in values(row)],
            )
        return [(r[0], r[1]) for r in cursor.fetchall()]


BATCH_TABLE = "ingest_batch"


def copy_batch(cursor, conn, rows, columns, values) -> None:
    """The rows into a temporary table of this transaction, by COPY: binding
    thousands of values into one statement cost the client more than the server's
    insert; COPY streams them with the driver's C adapters. The table goes at
    commit (so a connection pooler handing the session to another client is fine)."""
    fields = [UsageEvent._meta.get_field(c) for c in columns]
    definition = ", ".join(
        f"{name} {field.db_type(conn)}" for name, field in zip(columns, fields, strict=True)
    )
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {BATCH_TABLE} (position integer, {definition}) "
        "ON COMMIT DROP"
    )
    cursor.execute(f"TRUNCATE {BATCH_TABLE}")
    with cursor.cursor.copy(
        f"COPY {BATCH_TABLE} (position, {', '.join(columns)}) FROM STDIN"
    ) as copy:
        for position, row in enumerate(rows):
            copy.write_row((position, *values(row)))
