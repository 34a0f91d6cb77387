"""Bulk-load usage events from a JSON-lines or CSV file, with the API's validation."""

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from tqdm import tqdm

from accounts.models import PlatformPrincipal
from metering.api.parsers import bounded_decimal
from metering.ingestion import count_stored, store_events, validate_events
from utilities.inputs import load_json_text

EVENT_COLUMNS = ("event_id", "tenant", "meter", "quantity", "timestamp", "source")
MAX_REPORTED = 50


@dataclass
class LoadSummary:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)


class Command(BaseCommand):
    help = (
        "Load usage events from FILE (JSON lines, or CSV with columns event_id, tenant, "
        "meter, quantity, timestamp, source and attributes as JSON or attr_<key> columns). "
        "Invalid lines are reported by number and skipped; the rest are stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--format", choices=["jsonl", "csv"], help="default: by extension")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--dry-run", action="store_true", help="validate only; store nothing")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file, format, batch_size, dry_run, no_progress, **options):
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        kind = format or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        summary = LoadSummary()
        with (
            path.open(newline="", encoding="utf-8") as handle,
            tqdm(desc="Events", unit="event", disable=no_progress) as bar,
        ):
            lines = read_csv(handle) if kind == "csv" else read_jsonl(handle)
            for batch in batches(lines, batch_size):
                load_batch(batch, summary, dry_run=dry_run)
                bar.update(len(batch))
        self.report(summary, dry_run)

    def report(self, summary: LoadSummary, dry_run: bool):
        verb = "would be accepted" if dry_run else "accepted"
        self.stdout.write(
            f"{summary.accepted} {verb}, {summary.duplicates} duplicates, "
            f"{len(summary.rejected)} rejected."
        )
        for line_no, reason in summary.rejected[:MAX_REPORTED]:
            self.stdout.write(f"  line {line_no}: {reason}")
        if len(summary.rejected) > MAX_REPORTED:
            self.stdout.write(f"  … and {len(summary.rejected) - MAX_REPORTED} more.")


def load_batch(batch: list[tuple[int, object]], summary: LoadSummary, *, dry_run: bool):
    """Validate one batch line by line; store its valid events in one transaction."""
    events, line_numbers = [], []
    for line_no, parsed in batch:
        if isinstance(parsed, Exception):
            summary.rejected.append((line_no, str(parsed)))
        else:
            events.append(parsed)
            line_numbers.append(line_no)
    if not events:
        return
    rows, errors = validate_events(events, principal=PlatformPrincipal(), now=timezone.now())
    for error in errors:
        where = f"{error.field}: " if error.field else ""
        summary.rejected.append((line_numbers[error.index], where + error.message))
    if dry_run:
        unique_keys = list(dict.fromkeys((r.tenant_id, r.event_id) for r in rows))
        stored = count_stored(unique_keys)
        summary.accepted += len(unique_keys) - stored
        summary.duplicates += len(rows) - (len(unique_keys) - stored)
        return
    with transaction.atomic():
        result = store_events(rows)
    summary.accepted += result.accepted
    summary.duplicates += result.duplicates


def batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def read_jsonl(handle):
    for line_no, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        yield line_no, parse_line(line)


def parse_line(line: str):
    """One event, or the ValueError saying why the line is not one (as the API would)."""
    try:
        return load_json_text(line, parse_float=bounded_decimal, parse_constant=reject_constant)
    except json.JSONDecodeError as error:
        return ValueError(f"not valid JSON ({error})")
    except ValueError as error:
        return error


def read_csv(handle):
    reader = csv.DictReader(handle)
    for row in reader:
        line_no = reader.line_num
        try:
            yield line_no, csv_event(row)
        except ValueError as error:
            yield line_no, error


def csv_event(row: dict) -> dict:
    event = {k: row[k] for k in EVENT_COLUMNS if row.get(k) not in (None, "")}
    attributes = {}
    if row.get("attributes"):
        attributes = parse_line(row["attributes"])
        if isinstance(attributes, ValueError):
            raise ValueError(f"attributes: {attributes}")
        if not isinstance(attributes, dict):
            raise ValueError("attributes: not a JSON object")
    for key, value in row.items():
        if key and key.startswith("attr_") and value:
            attributes[key[len("attr_") :]] = value
    if attributes:
        event["attributes"] = attributes
    return event


def reject_constant(name):
    raise ValueError(f"{name} is not a finite number")
