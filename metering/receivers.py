"""What metering does when something happens elsewhere, and the rules that ask
the event store, which the models below it cannot."""

from django.db.models import ProtectedError

from metering.stores import event_store, uses_clickhouse


def events_outside_the_database(sender, tenants, **kwargs) -> list[str]:
    """A tenant whose events are in ClickHouse stays: the event table's foreign key
    protects it only while the events are in the database."""
    return stored_elsewhere(tenants, "tenant_id")


def meter_deletion_blockers(meters) -> list[str]:
    """Why these meters may not be deleted, beyond the event table's foreign key."""
    return stored_elsewhere(meters, "meter_id")


def refuse_meter_deletion(sender, instance, **kwargs):
    if reasons := meter_deletion_blockers([instance]):
        raise ProtectedError(" ".join(reasons), {instance})


def stored_elsewhere(objects, column: str) -> list[str]:
    if not uses_clickhouse():
        return []
    store = event_store()
    return [
        f"{obj} has usage events in the event store."
        for obj in objects
        if store.holds_events(**{column: obj.pk})
    ]
