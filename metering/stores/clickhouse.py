"""The ClickHouse event store: raw events in ClickHouse, their bookkeeping here.

ClickHouse cannot refuse a duplicate key or hand out ids, so this database keeps
both, in the same transaction as the batch:

- EventKey, the idempotency ledger: a (tenant, event id) stored within the
  back-dating window. Its unique index decides what is a duplicate, also
  against a concurrent writer, exactly as the event table's does in the
  relational store.
- EventBatch, the positions: a batch's id, taken in a transaction of its own
  before its events are written, is stored with each event. The batch commits
  with its ledger rows, after ClickHouse accepted its events; the watermark is
  the highest batch below which none is still open.

ClickHouse's insert is synchronous and carries the batch's deduplication token,
so a retried insert is stored once. Should the transaction fail after ClickHouse
accepted the events, the batch is marked abandoned and its events are left out
of every read (`excluded_batches`) until `purge_abandoned` deletes them.
"""

import json
from contextlib import suppress
from datetime import UTC, date, timedelta
from uuid import uuid4

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone

from metering.clickhouse import client, events_table, is_embedded
from metering.models import EventBatch, EventKey
from metering.stores.events import IngestResult, StoredEvent
from metering.stores.table import (
    INSERT_CHUNK,
    announce_stored,
    committed_batch_ceiling,
    enter_ingest_gate,
)

COLUMNS = [
    "tenant_id", "event_id", "meter_id", "quantity", "occurred_at", "received_at",
    "source", "dimension", "attributes", "batch", "position",
]  # fmt: skip
# An open batch older than this has lost its writer (a request never takes this long).
ABANDON_AFTER = timedelta(minutes=10)


class ClickHouseEventStore:
    name = "clickhouse"

    def store(self, rows) -> IngestResult:
        sent = len(rows)
        rows = first_of_each_key(sorted(rows, key=lambda row: (row.tenant_id, row.event_id)))
        batch = open_batch()
        try:
            with transaction.atomic():
                fresh = record_keys(rows, batch)
                if fresh:
                    insert_events(fresh, batch)
                EventBatch.objects.filter(pk=batch).update(
                    state=EventBatch.State.COMMITTED, events=len(fresh)
                )
                announce_stored(fresh, [(row.tenant_id, row.event_id) for row in fresh])
        except BaseException:
            abandon([batch])
            raise
        return IngestResult(accepted=len(fresh), duplicates=sent - len(fresh))

    def count_stored(self, keys) -> int:
        found = 0
        by_tenant: dict[int, list[str]] = {}
        for tenant_id, event_id in keys:
            by_tenant.setdefault(tenant_id, []).append(event_id)
        for tenant_id, event_ids in by_tenant.items():
            for start in range(0, len(event_ids), 2000):
                chunk = event_ids[start : start + 2000]
                found += EventKey.objects.filter(tenant_id=tenant_id, event_id__in=chunk).count()
        return found

    def watermark(self, grace: timedelta) -> int:
        abandon_stale()
        if not grace:
            return self.top()
        return committed_batch_ceiling()

    def top(self) -> int:
        top = EventBatch.objects.filter(state=EventBatch.State.COMMITTED).aggregate(top=Max("id"))
        return top["top"] or 0

    def holds_events(self, **match) -> bool:
        """Whether any event (of `meter_id` and `tenant_id`, where given) is stored."""
        where, params = (
            ["NOT has({excluded:Array(UInt64)}, batch)"],
            {"excluded": excluded_batches()},
        )
        for column in ("meter_id", "tenant_id"):
            if column in match:
                where.append(f"{column} = {{{column}:UInt64}}")
                params[column] = match[column]
        sql = f"SELECT 1 FROM {events_table()} WHERE {' AND '.join(where)} LIMIT 1"
        return bool(client.rows(sql, params))

    def tidy(self) -> None:
        """Delete what aborted batches left, and ledger keys past the window."""
        abandon_stale()
        purge_abandoned()
        prune_ledger()

    def waiting(self, after: int, limit: int) -> int:
        """Events in committed batches past `after` (counted from the batches)."""
        waiting = EventBatch.objects.filter(id__gt=after, state=EventBatch.State.COMMITTED)
        return min(limit, waiting.aggregate(n=Sum("events"))["n"] or 0)

    def events(self, *, tenant_ids=None, after=None, up_to=None) -> list[StoredEvent]:
        where, params = (
            ["NOT has({excluded:Array(UInt64)}, batch)"],
            {"excluded": excluded_batches()},
        )
        if tenant_ids is not None:
            where.append("has({tenants:Array(UInt64)}, tenant_id)")
            params["tenants"] = list(tenant_ids)
        if after is not None:
            where.append("batch > {after:UInt64}")
            params["after"] = after
        if up_to is not None:
            where.append("batch <= {up_to:UInt64}")
            params["up_to"] = up_to
        rows = client.rows(
            f"SELECT event_id, tenant_id, meter_id, quantity, occurred_at, received_at, source, "
            f"dimension, attributes, batch FROM {events_table()} FINAL "
            f"WHERE {' AND '.join(where)} ORDER BY batch, position",
            params,
        )
        return [stored_event(row) for row in rows]

    def records(self, query, limit: int, offset: int = 0, order: str = "") -> list[StoredEvent]:
        """A page of usage records (metering.records.RecordQuery), newest first or
        in `order` (ClickHouse ORDER BY terms, which may name the query's params).

        FINAL merges every granule the conditions touch (5–8× the plain read of a
        subtree's page at 10M events). Read plainly, the rows up to the page's end
        are FINAL's own whenever none of their sort keys is stored twice: FINAL's
        rows are some of the plain read's, so its first rows are then the same.
        One lookup by those keys tells; a key stored twice (rare: a copy no
        merge has folded yet) takes the FINAL read."""
        where, params = record_conditions(query)
        params = {**params, **query.order_params}
        order = order or "occurred_at DESC, batch DESC, tenant_id DESC, event_id DESC"
        if offset + limit <= UNMERGED_PAGE_ROWS:
            rows = record_rows(where, params, order, limit=offset + limit, final=False)
            if each_stored_once(rows):
                return [stored_event(row) for row in rows[offset:]]
        rows = record_rows(where, params, order, limit=limit, offset=offset, final=True)
        return [stored_event(row) for row in rows]

    def count_records(self, query) -> int:
        where, params = record_conditions(query)
        sql = f"SELECT count() FROM {events_table()} FINAL WHERE {' AND '.join(where)}"
        return client.rows(sql, params)[0][0]


# Pages ending past this many rows are read with FINAL (the check would look up as many keys).
UNMERGED_PAGE_ROWS = 2_000
RECORD_COLUMNS = (
    "event_id, tenant_id, meter_id, quantity, occurred_at, received_at, source, dimension, "
    "attributes, batch"
)


def record_rows(where, params, order, *, limit: int, offset: int = 0, final: bool) -> list:
    return client.rows(
        f"SELECT {RECORD_COLUMNS} FROM {events_table()} {'FINAL' if final else ''} "
        f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {int(limit)} OFFSET {int(offset)}",
        params,
    )


def each_stored_once(rows) -> bool:
    """Whether no row of the table shares its sort key with one of `rows`, whatever
    its batch (FINAL would pick between them, then filter)."""
    keys = [(aware(occurred).astimezone(UTC).date(), tenant, meter, event_id)
            for event_id, tenant, meter, _, occurred, *_ in rows]  # fmt: skip
    if len(set(keys)) != len(keys):
        return False
    if not keys:
        return True
    stored = client.rows(
        f"SELECT count() FROM {events_table()} WHERE (toDate(occurred_at), tenant_id, "
        "meter_id, event_id) IN {keys:Array(Tuple(Date, UInt64, UInt64, String))}",
        {"keys": keys},
    )[0][0]
    return stored == len(keys)


def record_conditions(query) -> tuple[list[str], dict]:
    """ClickHouse conditions and parameters selecting a RecordQuery's events."""
    where = ["NOT has({excluded:Array(UInt64)}, batch)"]
    params: dict = {"excluded": excluded_batches()}
    if query.tenant_ids is not None:
        where.append("has({tenants:Array(UInt64)}, tenant_id)")
        params["tenants"] = query.tenant_ids
    if query.meter_ids is not None:
        where.append("has({meters:Array(UInt64)}, meter_id)")
        params["meters"] = query.meter_ids
    if query.source:
        where.append("source = {source:String}")
        params["source"] = query.source
    bounds = [("start", ">=", query.start), ("end", "<", query.end),
              ("end_inclusive", "<=", query.end_inclusive)]  # fmt: skip
    for name, op, moment in bounds:
        if moment is not None:
            where.append(f"occurred_at {op} {{{name}:DateTime64(6, 'UTC')}}")
            params[name] = naive(moment)
    if query.before is not None:
        occurred, batch, tenant_id, event_id = query.before
        where.append(
            "(occurred_at, batch, tenant_id, event_id) < ({c_at:DateTime64(6, 'UTC')}, "
            "{c_batch:UInt64}, {c_tenant:UInt64}, {c_event:String})"
        )
        params.update(c_at=naive(occurred), c_batch=batch, c_tenant=tenant_id, c_event=event_id)
    return where, params


def naive(moment):
    """A UTC instant as ClickHouse's DateTime64 parameter takes it."""
    return moment.astimezone(UTC).replace(tzinfo=None)


def stored_event(row) -> StoredEvent:
    event_id, tenant_id, meter_id, quantity, occurred, received, source, dim, attrs, batch = row
    return StoredEvent(
        event_id, tenant_id, meter_id, quantity, aware(occurred), aware(received), source, dim,
        json.loads(attrs or "{}"), batch,
    )  # fmt: skip


def aware(value):
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def first_of_each_key(rows: list) -> list:
    """A key repeated inside the batch: its first occurrence is the event."""
    seen, kept = set(), []
    for row in rows:
        key = (row.tenant_id, row.event_id)
        if key not in seen:
            seen.add(key)
            kept.append(row)
    return kept


def open_batch() -> int:
    """A new batch's id, committed before its events are written, under the ingest
    gate (see committed_batch_ceiling): ids then become visible in their order."""
    with transaction.atomic():
        enter_ingest_gate()
        return EventBatch.objects.create().pk


def record_keys(rows: list, batch: int) -> list:
    """Add the rows' keys to the ledger; returns the rows whose key was new.

    INSERT … ON CONFLICT DO NOTHING RETURNING, as the relational store inserts
    events: the unique index decides, also against a concurrent writer."""
    new: set[tuple[int, str]] = set()
    table = EventKey._meta.db_table
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            values = []
            for row in chunk:
                day = row.occurred_at.astimezone(UTC).date()
                values += [row.tenant_id, row.event_id, connection.ops.adapt_datefield_value(day),
                           batch]  # fmt: skip
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, event_id, day, batch_id) VALUES "
                + ", ".join(["(%s, %s, %s, %s)"] * len(chunk))
                + " ON CONFLICT DO NOTHING RETURNING tenant_id, event_id",
                values,
            )
            new.update((tenant_id, event_id) for tenant_id, event_id in cursor.fetchall())
    return [row for row in rows if (row.tenant_id, row.event_id) in new]


def insert_settings(batch: int) -> dict:
    """A synchronous insert, stored once however often it is retried."""
    # Unique per call: a retry of this insert (the client's own) is stored once, and
    # a batch id that a rolled-back test transaction hands out again stays distinct.
    token = {"insert_deduplication_token": f"usage-batch-{batch}-{uuid4().hex}"}
    if is_embedded():
        return token
    return {**token, "async_insert": 1, "wait_for_async_insert": 1, "async_insert_deduplicate": 1}


def insert_events(rows: list, batch: int, settings: dict | None = None) -> None:
    """Write the rows as batch `batch`, in their order (`settings`: the insert's
    own, insert_settings by default)."""
    data = [
        [row.tenant_id, row.event_id, row.meter_id, row.quantity, row.occurred_at,
         row.received_at, row.source, row.dimension, json.dumps(row.attributes or {}),
         batch, position]
        for position, row in enumerate(rows)
    ]  # fmt: skip
    client.insert(events_table(), data, COLUMNS, settings=settings or insert_settings(batch))


def abandon(batches: list[int]) -> None:
    """Mark open batches abandoned (their events, if any reached ClickHouse, are
    then left out of every read)."""
    # If the database itself failed, abandon_stale marks them later.
    with suppress(Exception):
        EventBatch.objects.filter(pk__in=batches, state=EventBatch.State.OPEN).update(
            state=EventBatch.State.ABANDONED
        )


def abandon_stale() -> int:
    cutoff = timezone.now() - ABANDON_AFTER
    return EventBatch.objects.filter(state=EventBatch.State.OPEN, created_at__lt=cutoff).update(
        state=EventBatch.State.ABANDONED
    )


def excluded_batches() -> list[int]:
    """Batches whose events must not be read: abandoned ones not purged yet."""
    return list(
        EventBatch.objects.filter(state=EventBatch.State.ABANDONED).values_list("pk", flat=True)
    )


def purge_abandoned() -> int:
    """Delete the events of abandoned batches from ClickHouse; returns the batches."""
    batches = excluded_batches()
    if batches:
        client.command(
            f"ALTER TABLE {events_table()} DELETE WHERE has({{batches:Array(UInt64)}}, batch)",
            {"batches": batches},
            settings={"mutations_sync": 2},
        )
        EventBatch.objects.filter(pk__in=batches).update(state=EventBatch.State.PURGED)
    return len(batches)


def prune_ledger(today: date | None = None) -> int:
    """Forget keys of days no event may be sent for any more."""
    return EventKey.objects.filter(Q(day__lt=ledger_start(today))).delete()[0]


def ledger_start(today: date | None = None) -> date:
    """The first day whose keys the ledger keeps: events may still be sent for it
    (the back-dating window, a day's margin for time zones)."""
    today = today or timezone.now().date()
    return today - timedelta(days=settings.USAGE_BACKDATE_DAYS + 1)
