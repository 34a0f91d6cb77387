from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self):
        from accounts.signals import tenant_deletion_blockers
        from metering.receivers import events_outside_the_database

        tenant_deletion_blockers.connect(events_outside_the_database, dispatch_uid="event-store")
