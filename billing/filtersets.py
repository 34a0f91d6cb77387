"""Filters for the plan and subscription lists (API and admin-side pages)."""

import django_filters

from billing.models import Plan, Subscription
from utilities.inputs import validate_supported_date


class PlanFilterSet(django_filters.FilterSet):
    owner = django_filters.CharFilter(field_name="owner__slug", label="Owner (slug)")
    platform = django_filters.BooleanFilter(
        field_name="owner", lookup_expr="isnull", label="Platform plans"
    )
    currency = django_filters.CharFilter()
    is_active = django_filters.BooleanFilter()

    class Meta:
        model = Plan
        fields = ["owner", "platform", "currency", "is_active"]


class SubscriptionFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(field_name="tenant__slug", label="Tenant (slug)")
    plan = django_filters.CharFilter(field_name="plan__code", label="Plan (code)")
    active_on = django_filters.DateFilter(
        method="filter_active_on", label="Active on (date)", validators=[validate_supported_date]
    )

    class Meta:
        model = Subscription
        fields = ["tenant", "plan", "active_on"]

    def filter_active_on(self, queryset, name, value):
        return queryset.in_force(value, value)
