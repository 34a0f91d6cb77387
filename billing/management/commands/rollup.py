from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from billing.tasks import after_rollup
from billing.usage.rollup import run_rollup
from billing.usage.runs import COMMIT_GRACE, all_event_days


class Command(BaseCommand):
    help = (
        "Roll usage events up into the tenant billing table now. Without options: the "
        "days that received events since the last complete run."
    )

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--day", type=date.fromisoformat, help="recompute this UTC day")
        group.add_argument(
            "--since", type=date.fromisoformat, help="recompute every day from this one to today"
        )
        group.add_argument("--all", action="store_true", help="recompute every day with events")
        parser.add_argument(
            "--grace",
            type=float,
            default=COMMIT_GRACE.total_seconds(),
            help="leave events received in the last N seconds to the next run",
        )
        parser.add_argument("--no-progress", action="store_true")
        parser.add_argument(
            "--no-billing",
            action="store_true",
            help="skip refreshing draft statements and checking alerts afterwards",
        )

    def handle(
        self,
        *args,
        day=None,
        since=None,
        all=False,
        grace=0.0,
        no_progress=False,
        no_billing=False,
        **options,
    ):
        days = None
        if day:
            days = [day]
        elif since:
            today = timezone.now().date()
            if since > today:
                raise CommandError("--since is in the future.")
            days = [since + timedelta(days=n) for n in range((today - since).days + 1)]
        elif all:
            days = all_event_days()
        with tqdm(desc="Days", unit="day", disable=no_progress) as bar:
            run = run_rollup(
                days=days, trigger="command", grace=timedelta(seconds=grace), progress=bar
            )
        self.stdout.write(
            f"Rollup {run.status}: {run.days_recomputed} day(s), {run.events_read:,} events, "
            f"{run.rows_written:,} rows in {run.duration_ms / 1000:.1f} s "
            f"(watermark {run.watermark})."
        )
        if run.status == run.Status.SUCCESS and not no_billing:
            outcome = after_rollup()
            self.stdout.write(
                f"Statements: {outcome['drafts']} draft(s) refreshed; "
                f"{outcome['alerts']} new alert(s)."
            )
