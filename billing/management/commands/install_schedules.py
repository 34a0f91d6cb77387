from django.core.management.base import BaseCommand

from billing.schedules import install_schedules


class Command(BaseCommand):
    help = "Install (or update) the scheduled tasks; safe to run any number of times."

    def handle(self, *args, **options):
        for schedule in install_schedules():
            self.stdout.write(
                f"{schedule.name}: {schedule.func} every {schedule.minutes} minute(s), "
                f"next run {schedule.next_run:%Y-%m-%d %H:%M} UTC"
            )
