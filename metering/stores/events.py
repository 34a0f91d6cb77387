"""Events as the stores take them and give them back."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


class StoredEvent(NamedTuple):
    event_id: str
    tenant_id: int
    meter_id: int
    quantity: Decimal
    occurred_at: datetime
    received_at: datetime
    source: str
    dimension: str
    attributes: dict
    position: int  # the event's id in the table; its batch's id in ClickHouse

    @property
    def key(self) -> tuple:
        """Where the event sits in a newest-first list: unique, and ordered by time."""
        return (self.occurred_at, self.position, self.tenant_id, self.event_id)


class EventRow(NamedTuple):
    """A valid event, ready to insert: the event table's columns. The insert path
    reads these attribute names, so a UsageEvent (the demo's) goes through it too;
    a row is a tuple because building ten thousand model instances per batch cost
    more than inserting them."""

    event_id: str
    tenant_id: int
    meter_id: int
    quantity: Decimal
    occurred_at: datetime
    received_at: datetime
    source: str
    dimension: str
    attributes: dict


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
