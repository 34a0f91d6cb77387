"""Where raw usage events are kept: the event store interface.

Two implementations, chosen by USAGE_EVENT_STORE: `orm`, the relational event
table (UsageEvent), and `clickhouse`, a ClickHouse table at CLICKHOUSE_URL. Each
stores a validated batch (whole or not at all, duplicates counted per tenant),
says up to which position every event is committed (the rollup's watermark:
event ids in the table, batch ids in ClickHouse), and reads events back for the
records lists and for checks. The billing reads over events (member day values,
the real-time tail, distinct values) have their own pair of implementations in
billing.usage.event_reads, above this layer.
"""

from functools import cache
from typing import Protocol

from django.conf import settings


class EventStore(Protocol):
    name: str

    def store(self, rows: list) -> "IngestResult":  # noqa: F821
        """Store the validated rows (EventRow or UsageEvent) in one batch."""

    def count_stored(self, keys: list[tuple[int, str]]) -> int:
        """How many of these (tenant id, event id) pairs are stored already."""

    def watermark(self, grace) -> int:
        """The highest position every event at or below which is committed."""

    def holds_events(self, **match) -> bool:
        """Whether any event (of `meter_id` and `tenant_id`, where given) is stored."""

    def tidy(self) -> None:
        """Housekeeping before a rollup run."""

    def top(self) -> int:
        """The highest committed position (whatever may still be in flight below)."""

    def events(self, *, tenant_ids=None, after=None, up_to=None) -> list:
        """Events as StoredEvent rows (for checks, exports and moves)."""


def event_store() -> EventStore:
    return _store(settings.USAGE_EVENT_STORE)


@cache
def _store(name: str) -> EventStore:
    if name == "clickhouse":
        from metering.stores.clickhouse import ClickHouseEventStore

        return ClickHouseEventStore()
    from metering.stores.orm import OrmEventStore

    return OrmEventStore()


def uses_clickhouse() -> bool:
    return settings.USAGE_EVENT_STORE == "clickhouse"
