"""Move an existing deployment's usage events from the relational table into
ClickHouse, and the billing watermarks with them (docs/operations.md)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from billing.usage.event_move import (
    decisive_marks,
    running_rollups,
    straddled_marks,
    translate_watermarks,
)
from metering.models import EventKey, EventMove
from metering.stores import move
from metering.stores.clickhouse import ledger_start

MAX_REPORTED = 20


class Command(BaseCommand):
    help = (
        "Copy every usage event of the relational table into ClickHouse (CLICKHOUSE_URL), "
        "in committed batches, and translate the rollup's watermarks from event ids to "
        "batch ids. Run it with ingestion and the task cluster stopped, then set "
        "USAGE_EVENT_STORE=clickhouse. Killed, it continues where it stopped when run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=50_000, help="events per batch, at most")
        parser.add_argument("--dry-run", action="store_true", help="count only; move nothing")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, chunk, dry_run, no_progress, **options):
        if chunk < 1:
            raise CommandError("--chunk must be at least 1.")
        require_clickhouse()
        record = move.the_move()
        if record is not None and record.finished_at is not None:
            check_counts()
            self.report_finished(record)
            return
        refuse_unless_stopped(fresh=record is None)
        cuts = decisive_marks()
        if dry_run:
            self.report_plan(chunk, cuts)
            return
        record = record or EventMove.objects.create()
        try:
            with tqdm(
                total=move.events_to_move(), desc="Events", unit="event", disable=no_progress
            ) as bar:
                for moved in move.move_events(chunk, cuts):
                    bar.update(moved)
        except move.MoveError as error:
            raise CommandError(str(error)) from error
        check_counts()
        self.report_finished(finish(record))
        self.stdout.write(
            "Next: set USAGE_EVENT_STORE=clickhouse and start ingestion and the task cluster."
        )

    def report_plan(self, chunk: int, cuts: set[int]):
        first_day = ledger_start()
        pending = move.pending_range()
        self.stdout.write(
            f"{move.events_to_move():,} events would be moved in "
            f"{move.planned_batches(chunk, cuts):,} batches of at most {chunk:,}; "
            f"{move.ledger_keys_to_record(first_day, move.moved_up_to()):,} keys of events "
            f"since {first_day} would go into the ledger."
        )
        if pending is not None:
            self.stdout.write(
                f"Batch {pending.batch_id} (events {pending.first_id}–{pending.last_id}) "
                "was left unfinished by an interrupted run; it would be finished first."
            )
        for mark in sorted(cuts):
            self.stdout.write(f"A batch would end at event {mark} (a billing watermark).")

    def report_finished(self, record: EventMove):
        keys = EventKey.objects.filter(batch__moved_range__isnull=False).count()
        finished = timezone.localtime(record.finished_at)
        self.stdout.write(
            f"Moved {record.events:,} events ({finished:%Y-%m-%d %H:%M}); {keys:,} keys of "
            "recent events in the ledger. The billing watermark, "
            f"event {record.watermark_before}, is batch {record.watermark_after}. "
            "Both stores hold the same events per tenant and meter."
        )


def require_clickhouse() -> None:
    """ClickHouse configured, reachable, with its schema applied."""
    if not settings.CLICKHOUSE_URL:
        raise CommandError(
            "Set CLICKHOUSE_URL to the ClickHouse server (or chdb:///dir) the events move to."
        )
    from metering.clickhouse.schema import pending

    try:
        missing = pending()
    except Exception as error:  # whatever the driver raises: the server is not usable
        raise CommandError(f"ClickHouse at CLICKHOUSE_URL cannot be read: {error}") from error
    if missing:
        raise CommandError(
            f"The ClickHouse schema is not applied ({', '.join(missing)} missing): "
            "run `manage.py ch_migrate` first."
        )


def refuse_unless_stopped(*, fresh: bool) -> None:
    """The move reads the table while nothing writes events or runs a rollup, into
    a ClickHouse store nothing else has written to."""
    if running := running_rollups():
        raise CommandError(
            f"A rollup is running (run {running[0].pk}, started {running[0].started_at:%H:%M}): "
            "stop the task cluster first."
        )
    if foreign := move.foreign_batches():
        raise CommandError(
            f"ClickHouse holds {foreign} batches of events ingested into it directly: the "
            "move is for a deployment whose events are all in the relational table."
        )
    if fresh and move.clickhouse_rows():
        raise CommandError(
            "The ClickHouse events table is not empty, yet no move was started here: "
            "empty it (TRUNCATE TABLE) or point CLICKHOUSE_URL at another database."
        )


def check_counts() -> None:
    if differences := move.count_differences():
        shown = "\n".join(f"  {line}" for line in differences[:MAX_REPORTED])
        more = len(differences) - MAX_REPORTED
        raise CommandError(
            "The stores disagree (were events ingested during the move?); the billing "
            f"watermarks are left as they were:\n{shown}"
            + (f"\n  … and {more} more." if more > 0 else "")
        )


def finish(record: EventMove) -> EventMove:
    """Translate the billing watermarks and record the move as finished, at once."""
    with transaction.atomic():
        record = EventMove.objects.select_for_update().get(pk=record.pk)
        if record.finished_at is not None:
            return record
        if straddled := straddled_marks():
            raise CommandError(
                f"A rollup ran during the move: the billing watermarks {straddled} fall "
                "inside moved batches. Run `manage.py rollup --all --grace 0` (still with "
                "the relational store), then run the move again."
            )
        record.watermark_before, record.watermark_after = translate_watermarks()
        record.events = move.moved_events()
        record.finished_at = timezone.now()
        record.save()
    return record
