"""Apply the ClickHouse event store's schema (after `migrate`)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Apply the ClickHouse event store's numbered SQL migrations not applied yet."

    def handle(self, *args, **options):
        if not settings.CLICKHOUSE_URL:
            raise CommandError("Set CLICKHOUSE_URL to the ClickHouse server (or chdb:///dir).")
        from metering.clickhouse.schema import migrate

        ran = migrate(report=lambda line: self.stdout.write(line))
        if not ran:
            self.stdout.write("The ClickHouse schema is up to date.")
