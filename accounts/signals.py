"""Signals other apps listen to; accounts depends on none of them."""

from django.dispatch import Signal

# Sent inside the moving transaction with: tenant, old_ancestor_ids, new_ancestor_ids.
tenant_moved = Signal()
