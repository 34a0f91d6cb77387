"""What metering does when something happens elsewhere."""

from metering.stores import event_store, uses_clickhouse


def events_outside_the_database(sender, tenants, **kwargs) -> list[str]:
    """A tenant whose events are in ClickHouse stays: the event table's foreign key
    protects it only while the events are in the database."""
    if not uses_clickhouse():
        return []
    store = event_store()
    return [
        f"{tenant} has usage events in the event store."
        for tenant in tenants
        if store.holds_events(tenant_id=tenant.pk)
    ]
