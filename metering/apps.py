from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"
    verbose_name = "Metering"

    def ready(self):
        from django.db.models.signals import pre_delete

        from accounts.signals import tenant_deletion_blockers
        from metering.models import Meter
        from metering.receivers import events_outside_the_database, refuse_meter_deletion

        tenant_deletion_blockers.connect(events_outside_the_database, dispatch_uid="event-store")
        pre_delete.connect(refuse_meter_deletion, sender=Meter, dispatch_uid="meter-events")
