"""Reads of the tenant tree for the portal: a user's entry points, breadcrumbs and
the time zone pages show times in."""

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


UTC = "UTC"


def viewer_timezone(user) -> str:
    """The IANA zone a user reads times in: their top membership tenant's (the first
    of `top_tenants`, by name, when there are several); UTC for superusers and users
    without a membership. Days stay UTC days whatever the zone."""
    if not user.is_authenticated or user.is_superuser:
        return UTC
    tops = top_tenants(user)
    return tops[0].timezone if tops else UTC
