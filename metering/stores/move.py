"""Moving a deployment's events from the relational table into ClickHouse
(`manage.py move_events_to_clickhouse`), one range of event ids at a time.

Each range becomes one batch of the ClickHouse store, in three steps, so that a
move killed at any point is finished by running it again:

1. one transaction opens the batch and records its range (MovedRange);
2. the range's events are sent to ClickHouse under that batch, with a
   deduplication token made of the batch and the range;
3. one transaction adds the keys of the range's recent events to the ledger and
   commits the batch.

A run first finishes the range a killed run left open: the same rows under the
same token, so ClickHouse drops whatever it already stored of them, and the
batch's rows are counted before it commits. Then it goes on past the highest
moved id. Ranges end at the caller's cuts (the billing watermarks), so every
cut falls between two batches.
"""

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time
from uuid import uuid4

from django.db import transaction
from django.db.models import Count, Max, Sum

from metering.clickhouse import client, events_table
from metering.models import EventBatch, EventMove, MovedRange, UsageEvent
from metering.stores.clickhouse import (
    excluded_batches,
    insert_events,
    ledger_start,
    purge_abandoned,
    record_keys,
)
from metering.stores.events import StoredEvent
from metering.stores.orm import OrmEventStore


class MoveError(Exception):
    """The move cannot go on; the message says why and what to do."""


def moved_up_to() -> int:
    """The highest event id in a recorded range (committed or not)."""
    return MovedRange.objects.aggregate(top=Max("last_id"))["top"] or 0


def pending_range() -> MovedRange | None:
    """The range a killed run left with its batch not committed (at most one: a
    run finishes it before it records the next)."""
    return (
        MovedRange.objects.exclude(batch__state=EventBatch.State.COMMITTED)
        .select_related("batch")
        .first()
    )


def events_to_move() -> int:
    """Events not moved yet: past the recorded ranges, and in the pending one."""
    waiting = UsageEvent.objects.filter(id__gt=moved_up_to()).count()
    if (pending := pending_range()) is not None:
        waiting += range_events_count(pending.first_id, pending.last_id)
    return waiting


def range_events_count(first_id: int, last_id: int) -> int:
    return UsageEvent.objects.filter(id__gte=first_id, id__lte=last_id).count()


def foreign_batches() -> int:
    """Open or committed batches that no range of the move holds: events ingested
    into ClickHouse directly, which the move's batches would interleave with."""
    live = [EventBatch.State.OPEN, EventBatch.State.COMMITTED]
    return EventBatch.objects.filter(state__in=live, moved_range__isnull=True).count()


def clickhouse_rows() -> int:
    return client.rows(f"SELECT count() FROM {events_table()}")[0][0]


def move_events(chunk: int, cuts: Iterable[int], today: date | None = None) -> Iterator[int]:
    """Move every event not moved yet, `chunk` at most per batch and no batch across
    a cut; yields the events of each range moved. The keys of events from
    `ledger_start(today)` on go into the ledger."""
    cuts = sorted(set(cuts))
    first_day = ledger_start(today)
    if (pending := pending_range()) is not None:
        yield finish_pending(pending, first_day)
    while (span := next_range(moved_up_to(), chunk, cuts)) is not None:
        yield move_range(*span, first_day)


def next_range(after: int, chunk: int, cuts: list[int]) -> tuple[int, int] | None:
    """(first id, last id) of the next `chunk` events past `after`, ending at the
    first cut they would cross; None when no event is left."""
    events = UsageEvent.objects.order_by("id").values_list("id", flat=True)
    for cut in [*(c for c in cuts if c > after), None]:
        window = events.filter(id__gt=after)
        if cut is not None:
            window = window.filter(id__lte=cut)
        ids = list(window[:chunk])
        if ids:
            return ids[0], ids[-1]
        if cut is not None:
            after = cut
    return None


def move_range(first_id: int, last_id: int, first_day: date) -> int:
    with transaction.atomic():
        batch = EventBatch.objects.create()
        moved = MovedRange.objects.create(batch=batch, first_id=first_id, last_id=last_id)
    events = range_events(moved)
    send(moved, events)
    commit(moved, events, first_day)
    return len(events)


def finish_pending(moved: MovedRange, first_day: date) -> int:
    """Finish the range a killed run left: sent again under its token (ClickHouse
    drops what it stored already), counted, committed.

    A batch that was abandoned meanwhile (a rollup in ClickHouse mode took it for a
    dead ingestion) is excluded from every read: its events are deleted and its
    range is moved again, in a new batch."""
    if moved.batch.state != EventBatch.State.OPEN:
        purge_abandoned()
        moved.delete()
        return 0
    events = range_events(moved)
    send(moved, events)
    if batch_rows(moved.batch_id) != len(events):
        resend(moved, events)
    commit(moved, events, first_day)
    return len(events)


def range_events(moved: MovedRange) -> list[StoredEvent]:
    """The range's events in id order, the same rows for every attempt."""
    return OrmEventStore().events(after=moved.first_id - 1, up_to=moved.last_id)


def send(moved: MovedRange, events: list[StoredEvent], token: str | None = None) -> None:
    # A synchronous insert (not the ingestion's asynchronous one): the batch is
    # committed only once ClickHouse has stored it.
    settings = {"insert_deduplication_token": token or moved.token()}
    insert_events(events, moved.batch_id, settings=settings)


def resend(moved: MovedRange, events: list[StoredEvent]) -> None:
    """The batch's rows in ClickHouse are not its range's (a server that kept no
    record of the earlier attempt's token): delete them and send the range once
    more under a new token, which nothing can have been stored under."""
    client.command(
        f"ALTER TABLE {events_table()} DELETE WHERE batch = {{batch:UInt64}}",
        {"batch": moved.batch_id},
        settings={"mutations_sync": 2},
    )
    send(moved, events, token=f"{moved.token()}-{uuid4().hex}")
    if (stored := batch_rows(moved.batch_id)) != len(events):
        raise MoveError(
            f"Batch {moved.batch_id} holds {stored} rows in ClickHouse for the "
            f"{len(events)} events of ids {moved.first_id}–{moved.last_id}."
        )


def batch_rows(batch: int) -> int:
    """The rows of the batch in ClickHouse, duplicates included (no FINAL)."""
    return client.rows(
        f"SELECT count() FROM {events_table()} WHERE batch = {{batch:UInt64}}", {"batch": batch}
    )[0][0]


def commit(moved: MovedRange, events: list[StoredEvent], first_day: date) -> None:
    """Record the range's recent keys in the ledger (so a resent event stays a
    duplicate) and commit its batch, in one transaction."""
    recent = [e for e in events if e.occurred_at.astimezone(UTC).date() >= first_day]
    with transaction.atomic():
        record_keys(recent, moved.batch_id)
        committed = EventBatch.objects.filter(
            pk=moved.batch_id, state=EventBatch.State.OPEN
        ).update(state=EventBatch.State.COMMITTED, events=len(events))
        if not committed:
            # Abandoned while its events were sent: the next run moves it again.
            raise MoveError(
                f"Batch {moved.batch_id} was abandoned during the move: a rollup in "
                "ClickHouse mode ran. Stop the workers and run the move again."
            )


def ledger_keys_to_record(first_day: date, after: int = 0) -> int:
    """Keys the ledger gets for the events past `after`: those from `first_day` on."""
    since = datetime.combine(first_day, time(0), tzinfo=UTC)
    return UsageEvent.objects.filter(id__gt=after, occurred_at__gte=since).count()


def count_differences() -> list[str]:
    """Where the two stores disagree on the moved events: per tenant and meter,
    the relational table's events against ClickHouse's rows of the move's
    batches (no FINAL, so an event stored twice counts twice)."""
    ours = Counter(
        {
            (tenant, meter): n
            for tenant, meter, n in UsageEvent.objects.order_by()
            .values_list("tenant_id", "meter_id")
            .annotate(n=Count("id"))
        }
    )
    theirs = Counter(
        {(tenant, meter): n for tenant, meter, n in clickhouse_counts(last_moved_batch())}
    )
    differences = []
    for tenant, meter in sorted(ours.keys() | theirs.keys()):
        here, there = ours[tenant, meter], theirs[tenant, meter]
        if here != there:
            differences.append(
                f"tenant {tenant}, meter {meter}: {here} in the relational table, "
                f"{there} in ClickHouse"
            )
    return differences


def last_moved_batch() -> int:
    return MovedRange.objects.aggregate(top=Max("batch_id"))["top"] or 0


def clickhouse_counts(up_to_batch: int) -> list[tuple]:
    """(tenant, meter, rows) of the batches up to `up_to_batch` (the move's: events
    ingested after the switch are in later ones), less abandoned batches."""
    return client.rows(
        f"SELECT tenant_id, meter_id, count() FROM {events_table()} "
        "WHERE batch <= {up_to:UInt64} AND NOT has({excluded:Array(UInt64)}, batch) "
        "GROUP BY tenant_id, meter_id",
        {"up_to": up_to_batch, "excluded": excluded_batches()},
    )


def the_move() -> EventMove | None:
    return EventMove.objects.order_by("pk").first()


def planned_batches(chunk: int, cuts: Iterable[int]) -> int:
    """How many batches moving the remaining events takes (a dry run's count)."""
    after, batches = moved_up_to(), int(pending_range() is not None)
    for cut in [*(c for c in sorted(set(cuts)) if c > after), None]:
        segment = UsageEvent.objects.filter(id__gt=after)
        if cut is not None:
            segment = segment.filter(id__lte=cut)
        batches += -(-segment.count() // chunk)
        after = cut
    return batches


def moved_events() -> int:
    """The events in the move's committed batches."""
    committed = EventBatch.objects.filter(
        moved_range__isnull=False, state=EventBatch.State.COMMITTED
    )
    return committed.aggregate(n=Sum("events"))["n"] or 0
