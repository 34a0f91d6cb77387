"""The relational event table as an event store's storage: a validated batch
inserted in one transaction (COPY on PostgreSQL, a multi-row INSERT on SQLite),
duplicates counted through the unique (tenant, event_id) index, and the ingest
gate that lets the rollup read a watermark no insert in flight can fall below."""

from collections.abc import Callable
from datetime import UTC, timedelta
from operator import attrgetter

from django.conf import settings
from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.db.models import Min
from django.utils import timezone

from metering.models import EventBatch, UsageEvent
from metering.signals import events_stored
from metering.stores.events import EventRow, IngestResult

# Rows per INSERT statement: 9 columns keeps each well under SQLite's variable limit.
INSERT_CHUNK = 1000
KEYS_PER_LOOKUP = 2000
# Any fixed number: inserting transactions hold this PostgreSQL advisory lock shared,
# `committed_ceiling` takes it exclusively for an instant.
INGEST_GATE_ID = 715_2002
UNIQUE_VIOLATION = "23505"  # PostgreSQL's SQLSTATE


def count_stored_in_table(keys: list[tuple[int, str]]) -> int:
    by_tenant: dict[int, list[str]] = {}
    for tenant_id, event_id in keys:
        by_tenant.setdefault(tenant_id, []).append(event_id)
    found = 0
    for tenant_id, event_ids in by_tenant.items():
        for start in range(0, len(event_ids), KEYS_PER_LOOKUP):
            chunk = event_ids[start : start + KEYS_PER_LOOKUP]
            found += UsageEvent.objects.filter(tenant_id=tenant_id, event_id__in=chunk).count()
    return found


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
    places = UsageEvent._meta.get_field("quantity").decimal_places
    instant = instant_adapter(conn)
    conversions = {
        "quantity": lambda value: ops.adapt_decimalfield_value(value, 20, places),
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
