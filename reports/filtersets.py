"""The records page's filters: the events filterset of the records API, asked the
way a person answers them — a meter chosen by name, days picked from a calendar.

The filtering itself is `metering.filtersets.UsageEventFilterSet`'s, so the page,
its CSV and `/api/v1/events/` select the same records.
"""

import django_filters
from django import forms

from metering.filtersets import UsageEventFilterSet
from metering.models import Meter
from reports.forms import DATE_HINT
from reports.selectors import in_catalog_order

NARROWING = ("meter", "category", "source")


def meter_choices():
    """Meters by name, grouped by category in the catalog's order."""
    meters = in_catalog_order(Meter.objects.all())
    return [
        (label, [(m.code, m.name) for m in meters if m.category == category])
        for category, label in Meter.Category.choices
    ]


class RecordsFilterSet(UsageEventFilterSet):
    meter = django_filters.ChoiceFilter(
        field_name="meter__code", label="Meter", choices=meter_choices, empty_label="All meters"
    )
    # Counting the matches reads every event of the subtree in the date range (with a
    # meter, category or source filter, each event's row too: about 1 µs an event on
    # the demo data). Past this many events in range the page shows no total.
    count_limit = 200_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in (("start", "From"), ("end", "Until (inclusive)")):
            date_filter = self.filters[name]
            date_filter.label = label
            date_filter.extra["widget"] = forms.DateInput(attrs={"type": "date"})
            date_filter.extra["help_text"] = DATE_HINT

    def total(self) -> int | None:
        """How many records match; None when the subtree holds more than `count_limit`
        events in the date range. The page's own query is left as it is (a page of
        rows, no count): this adds one bounded count, two with a narrowing filter."""
        if not self.is_valid():
            return None
        dates = {name: self.data[name] for name in ("tenant", "start", "end") if name in self.data}
        in_range = type(self)(dates, queryset=self.queryset, request=self.request).qs
        found = in_range.order_by()[: self.count_limit + 1].count()
        if found > self.count_limit:
            return None
        if any(self.form.cleaned_data.get(name) for name in NARROWING):
            return self.qs.order_by().count()
        return found
