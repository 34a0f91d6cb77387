"""Signals other apps listen to; accounts depends on none of them."""

from django.db.models import ProtectedError
from django.dispatch import Signal

# Sent inside the moving transaction with: tenant, old_ancestor_ids, new_ancestor_ids.
tenant_moved = Signal()

# Sent before tenants are deleted, with: tenants. A receiver returns the reasons
# (strings) that forbid it: records of a tenant kept where no foreign key of this
# database protects them.
tenant_deletion_blockers = Signal()


def deletion_blockers(tenants) -> list[str]:
    """Why these tenants may not be deleted (empty: they may)."""
    return [
        reason
        for _, reasons in tenant_deletion_blockers.send(sender=None, tenants=list(tenants))
        for reason in reasons or ()
    ]


def refuse_blocked_deletion(sender, instance, **kwargs):
    """pre_delete of a tenant, whatever deletes it (the admin asks first, see
    TenantAdmin.get_deleted_objects)."""
    if reasons := deletion_blockers([instance]):
        raise ProtectedError(" ".join(reasons), {instance})
