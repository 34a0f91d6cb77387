"""Usage record filters, shared by the records API and the records page."""

import datetime as dt

import django_filters
from django.http import Http404

from accounts.models import Tenant
from metering.models import Meter, UsageEvent
from utilities.inputs import validate_supported_date


class UsageEventFilterSet(django_filters.FilterSet):
    tenant = django_filters.CharFilter(method="filter_tenant", label="Tenant (slug; its subtree)")
    meter = django_filters.CharFilter(method="filter_meter", label="Meter code")
    category = django_filters.ChoiceFilter(method="filter_category", choices=Meter.Category.choices)
    source = django_filters.ChoiceFilter(choices=UsageEvent.Source.choices)
    start = django_filters.DateTimeFilter(
        method="filter_start", label="From (date or time)", validators=[validate_supported_date]
    )
    end = django_filters.DateTimeFilter(
        method="filter_end", label="Until (date inclusive)", validators=[validate_supported_date]
    )

    class Meta:
        model = UsageEvent
        fields = ["tenant", "meter", "category", "source", "start", "end"]

    def filter_tenant(self, queryset, name, value):
        tenant = Tenant.objects.visible_to(self.request.user).filter(slug=value).first()
        if tenant is None:
            raise Http404("No such tenant.")
        return queryset.within(tenant)

    def filter_meter(self, queryset, name, value):
        return queryset.of_meters(code=value)

    def filter_category(self, queryset, name, value):
        return queryset.of_meters(category=value)

    def filter_start(self, queryset, name, value):
        return queryset.filter(occurred_at__gte=value)

    def filter_end(self, queryset, name, value):
        # A bare date means the whole day: end dates are inclusive.
        raw = self.data.get("end", "")
        if len(raw) == 10:
            return queryset.filter(occurred_at__lt=value + dt.timedelta(days=1))
        return queryset.filter(occurred_at__lte=value)
