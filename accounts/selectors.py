"""Reads of the tenant tree for the portal: a user's entry points and breadcrumbs."""

from accounts.models import Tenant, membership_roots


def top_tenants(user) -> list[Tenant]:
    """The tenants a user starts from: membership tenants not inside another one.

    Superusers start from the roots of every tree.
    """
    if not user.is_authenticated:
        return []
    if user.is_superuser:
        return list(Tenant.objects.root_nodes().order_by("kind", "name"))
    roots = membership_roots(user)
    tops = [t for t in roots if not any(o.pk != t.pk and o.contains(t) for o in roots)]
    return sorted(tops, key=lambda t: t.name)


def visible_ancestors(user, tenant: Tenant) -> list[Tenant]:
    """The tenant's ancestors the user may see, top first (for breadcrumbs)."""
    return list(tenant.get_ancestors().filter(pk__in=Tenant.objects.visible_to(user).values("pk")))
