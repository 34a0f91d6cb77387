"""Writes to the tenant tree: create, update and move, each validated and serialized."""

from contextlib import contextmanager

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction

from accounts.models import Tenant

# Any fixed number: every tree write takes the same PostgreSQL advisory lock.
TREE_LOCK_ID = 715_2001


@contextmanager
def tree_write_lock():
    """Serialize writes to the tree: django-mptt's lft/rght updates race otherwise.

    SQLite already serializes writers (IMMEDIATE transactions); PostgreSQL takes
    a transaction-scoped advisory lock.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [TREE_LOCK_ID])
        yield


def user_can_manage(user, tenant: Tenant | None) -> bool:
    """Managers and admins may edit inside their subtree; only superusers at the top."""
    if user.is_superuser:
        return True
    if tenant is None:
        return False
    return Tenant.objects.managed_by(user).filter(pk=tenant.pk).exists()


def check_parent_allowed(user, parent: Tenant | None) -> None:
    if not user_can_manage(user, parent):
        raise ValidationError(
            {
                "parent": "You can only add or move tenants under a tenant you manage."
                if parent is not None
                else "Only platform operators can create or move tenants at the top of the tree."
            }
        )


def create_tenant(*, user, **fields) -> Tenant:
    """Create a tenant under a parent the user manages, with the tree rules checked."""
    check_parent_allowed(user, fields.get("parent"))
    tenant = Tenant(**fields)
    with tree_write_lock():
        tenant.full_clean()
        tenant.save()
    return tenant


# What the seller's integration relies on: events name the tenant by its external
# id and are refused for an inactive one, in all-or-nothing batches. A tenant's
# own managers changing these would break the batches of everyone above it.
SELLER_FIELDS = ("external_id", "is_active")


def check_seller_fields(user, tenant: Tenant, changes: dict) -> None:
    changed = [f for f in SELLER_FIELDS if f in changes and changes[f] != getattr(tenant, f)]
    if changed and not user_can_manage(user, tenant.parent):
        raise ValidationError(
            {
                field: "Only the managers of the tenant above (or platform operators) "
                "change this: the integration sending usage relies on it."
                for field in changed
            }
        )


def update_tenant(*, user, tenant: Tenant, **changes) -> Tenant:
    """Apply changes to a tenant the user manages; a new parent must be managed too."""
    if not user_can_manage(user, tenant):
        raise PermissionDenied("You need the manager or admin role on this tenant to change it.")
    with tree_write_lock():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        check_seller_fields(user, tenant, changes)
        if "parent" in changes and changes["parent"] != tenant.parent:
            check_parent_allowed(user, changes["parent"])
        for field, value in changes.items():
            setattr(tenant, field, value)
        tenant.full_clean()
        tenant.save()
    return tenant
