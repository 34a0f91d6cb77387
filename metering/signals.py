"""Signals other apps listen to; metering depends on none of them."""

from django.dispatch import Signal

# Sent after a batch commits, with the sets `tenant_ids` and `meter_ids` of the
# events it added (duplicates excluded).
events_stored = Signal()
