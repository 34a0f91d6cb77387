"""The relational event store: the UsageEvent table, positions are event ids."""

from datetime import timedelta

from django.db.models import Max, Min
from django.utils import timezone

from metering.models import UsageEvent
from metering.stores.events import StoredEvent
from metering.stores.table import committed_ceiling, count_stored_in_table, store_in_table


class OrmEventStore:
    name = "orm"

    def store(self, rows):
        return store_in_table(rows)

    def count_stored(self, keys):
        return count_stored_in_table(keys)

    def watermark(self, grace: timedelta) -> int:
        """The highest event id that every earlier-received event has committed below.

        `grace` zero: the highest id, for callers that know no insert is in flight.
        Where the exact ceiling cannot be had in time (see committed_ceiling), events
        younger than `grace` are left to the next run: an insert transaction that
        took its id earlier may not have committed yet.
        """
        if grace:
            ceiling = committed_ceiling()
            if ceiling is not None:
                return ceiling
        top = self.top()
        if grace:
            cutoff = timezone.now() - grace
            young = UsageEvent.objects.filter(received_at__gt=cutoff).aggregate(low=Min("id"))
            if young["low"] is not None:
                top = min(top, young["low"] - 1)
        return top

    def top(self) -> int:
        return UsageEvent.objects.aggregate(top=Max("id"))["top"] or 0

    def events(self, *, tenant_ids=None, after=None, up_to=None) -> list[StoredEvent]:
        events = UsageEvent.objects.order_by("id")
        if tenant_ids is not None:
            events = events.filter(tenant_id__in=list(tenant_ids))
        if after is not None:
            events = events.filter(id__gt=after)
        if up_to is not None:
            events = events.filter(id__lte=up_to)
        return [
            StoredEvent(*row)
            for row in events.values_list(
                "event_id", "tenant_id", "meter_id", "quantity", "occurred_at", "received_at",
                "source", "dimension", "attributes", "id",
            )
        ]  # fmt: skip

    def holds_events(self, **match) -> bool:
        """Whether any event (of `meter_id` and `tenant_id`, where given) is stored."""
        return UsageEvent.objects.filter(**match).exists()

    def tidy(self) -> None:
        """Nothing to tidy: the table's transaction leaves nothing behind."""

    def waiting(self, after: int, limit: int) -> int:
        """Events past `after`, counted up to `limit` (a short primary-key range scan;
        ids have gaps, so their difference would overcount)."""
        return UsageEvent.objects.filter(id__gt=after)[:limit].count()
