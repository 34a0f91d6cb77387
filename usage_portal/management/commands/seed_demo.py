"""Load the demo: a realistic tenant tree and users at every level (idempotent)."""

import time

from django.core.management.base import BaseCommand
from django.test.utils import override_settings
from django.utils import timezone
from tqdm import tqdm

from accounts.demo import (
    demo_tree,
    demo_users,
    load_demo_brands,
    load_demo_tree,
    load_demo_users,
)
from accounts.models import Tenant
from billing.demo import load_demo_billing
from billing.usage.rollup import run_rollup
from metering.demo import DAYS, load_demo_usage
from metering.stores import event_store

PORTAL_URL = "http://127.0.0.1:8000/"


class Command(BaseCommand):
    help = "Load the demo tenant tree and demo users; running it again changes nothing."

    def add_arguments(self, parser):
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Only load when the database holds no tenant yet (still prints the logins).",
        )
        parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
        parser.add_argument(
            "--no-usage", action="store_true", help="Load the tree and users without usage."
        )
        parser.add_argument(
            "--days", type=int, default=DAYS, help=f"Days of usage up to today (default {DAYS})."
        )
        parser.add_argument(
            "--url", default=PORTAL_URL, help=f"Where the portal is served (default {PORTAL_URL})."
        )

    def handle(
        self,
        *args,
        if_empty=False,
        no_progress=False,
        no_usage=False,
        days=DAYS,
        url=PORTAL_URL,
        **options,
    ):
        tree = demo_tree()
        users = demo_users(tree)
        if if_empty and Tenant.objects.exists():
            self.stdout.write("Database already holds tenants; demo data left as it is.")
        else:
            with tqdm(total=len(tree), desc="Tenants", unit="tenant", disable=no_progress) as bar:
                created = load_demo_tree(tree, progress=bar)
            load_demo_users(users)
            brands = load_demo_brands()
            self.stdout.write(
                f"Demo tree: {len(tree)} tenants ({created} new), {brands} new brands."
            )
            if not no_usage:
                self.load_usage(days, no_progress)
            self.load_billing(no_progress)
        self.print_logins(users, url)

    def load_usage(self, days: int, no_progress: bool):
        if event_store().holds_events():
            self.stdout.write("Demo usage already loaded.")
            return
        started = time.monotonic()
        # The full rollup below follows at once: no compactions meanwhile.
        with (
            tqdm(desc="Usage", unit="organization", disable=no_progress) as bar,
            override_settings(USAGE_COMPACT_EVENTS=0),
        ):
            stored = load_demo_usage(timezone.now().date(), days=days, progress=bar)
        seconds = time.monotonic() - started
        self.stdout.write(f"Demo usage: {stored:,} events in {seconds:.0f} s.")

    def load_billing(self, no_progress: bool = False):
        """Roll the usage up first, so statements and alerts read the billing table."""
        started = time.monotonic()
        with tqdm(desc="Rollup", unit="day", disable=no_progress) as bar:
            run = run_rollup(trigger="demo", progress=bar)
        self.stdout.write("Plans, statements and alerts …")
        outcome = load_demo_billing(timezone.now().date())
        self.stdout.write(
            f"Demo billing: rollup of {run.days_recomputed} days, {outcome['plans']} plans, "
            f"{outcome['subscriptions']} new subscriptions, {outcome['final']} final and "
            f"{outcome['drafts']} draft statements, {outcome['alerts']} new alerts "
            f"in {time.monotonic() - started:.0f} s."
        )

    def print_logins(self, users, url: str):
        self.stdout.write(self.style.SUCCESS(f"Demo logins ({url}):"))
        for spec in users:
            where = spec.tenant_slug or "whole platform"
            self.stdout.write(
                f"  {spec.label:<28} {spec.username:<10} / {spec.password:<22} ({where})"
            )
