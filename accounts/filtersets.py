"""Tenant filters, shared by the API list and the portal pages."""

import django_filters
from django.db.models import Q

from accounts.models import Tenant


class TenantFilterSet(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=Tenant.Kind.choices)
    parent = django_filters.CharFilter(field_name="parent__slug", label="Parent (slug)")
    search = django_filters.CharFilter(method="filter_search", label="Search")
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Tenant
        fields = ["kind", "parent", "is_active", "search"]

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(name__icontains=value) | Q(slug__icontains=value) | Q(external_id__icontains=value)
        )
