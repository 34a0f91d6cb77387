"""An event as every store gives it back."""

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
