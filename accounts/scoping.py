"""The one scoping rule applied to any queryset, whatever its model.

`Tenant.objects.visible_to` decides what a user or API key may see, and models
that belong to a tenant carry the same rule on their querysets (`visible_to`).
The admin and API base classes restrict every queryset through `visible` here,
so no view, viewset, list filter or choice list filters by hand.
"""

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.shortcuts import get_object_or_404

from accounts.models import Tenant, restrict_to, visibility_q


def visible(queryset, principal, tenant_field: str | None = None):
    """`queryset` restricted to what `principal` may see.

    A queryset that knows the rule (`visible_to`) applies it. Otherwise
    `tenant_field` names the path to the owning tenant ("" for tenants
    themselves). A model nobody declared a rule for is hidden from everyone but
    superusers, so a new model fails closed instead of showing every tenant's rows.
    """
    if hasattr(queryset, "visible_to"):
        return queryset.visible_to(principal)
    if tenant_field is not None:
        prefix = f"{tenant_field}__" if tenant_field else ""
        return restrict_to(queryset, visibility_q(principal, prefix=prefix))
    if queryset.model is get_user_model():
        return visible_users(queryset, principal)
    return restrict_to(queryset, bool(getattr(principal, "is_superuser", False)))


def visible_users(queryset, principal):
    """People who belong to a tenant the principal sees, and the principal itself."""
    condition = visibility_q(principal, prefix="memberships__tenant__")
    if condition is True or condition is False:
        return restrict_to(queryset, condition)
    members = get_user_model().objects.filter(condition).values("pk")
    return queryset.filter(Q(pk__in=members) | Q(pk=principal.pk))


def visible_tenant_or_404(principal, slug: str) -> Tenant:
    """The tenant a URL or query parameter names, when the principal may see it:
    another tenant's slug and an unknown one answer the same 404."""
    return get_object_or_404(Tenant.objects.visible_to(principal), slug=slug)
