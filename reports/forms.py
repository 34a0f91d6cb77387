"""The report page's filters: the usage API's question plus period presets.

Built on `billing.forms.UsageQueryForm` so the page validates meters, dates,
source and dimension exactly as `/api/v1/usage/` does. A form rather than a
django-filter FilterSet: the report filters a usage summary, not a queryset
(the records page, which lists a queryset, uses the events FilterSet).
"""

from django import forms
from django.utils import timezone

from billing.forms import UsageQueryForm
from metering.models import Meter
from reports.date_ranges import CUSTOM, PRESETS, THIS_MONTH, DateRange, preset_range
from reports.selectors import STACK_BY, in_catalog_order

CATEGORIES = Meter.Category.choices
PRESET_NAMES = dict(PRESETS)
# Every date on the page is written this way; a date box may show the browser's own format.
DATE_HINT = "YYYY-MM-DD, UTC"


class ReportQueryForm(UsageQueryForm):
    period = forms.ChoiceField(choices=PRESETS, required=False, initial=THIS_MONTH)
    stack = forms.ChoiceField(
        choices=[(s, f"by {s}") for s in STACK_BY], required=False, initial="child"
    )

    field_order = ["period", "start", "end", "meter", "source", "dimension", "stack"]

    def __init__(self, data, tenant, **kwargs):
        data = data.copy()
        data["tenant"] = tenant.slug
        if not data.get("category"):
            data["category"] = CATEGORIES[0][0]
        if not data.get("period"):
            # Dates typed without a preset mean a custom range.
            data["period"] = CUSTOM if data.get("start") or data.get("end") else THIS_MONTH
        super().__init__(data, **kwargs)
        self.fields["tenant"].widget = forms.HiddenInput()
        self.fields["category"].widget = forms.HiddenInput()
        self.fields["group_by"].widget = forms.HiddenInput()
        self.fields["stack"].widget = forms.HiddenInput()  # chosen next to the chart
        for name in ("start", "end"):
            self.fields[name].widget = forms.DateInput(attrs={"type": "date"})
            self.fields[name].help_text = DATE_HINT
        self.fields["meter"].widget = forms.Select(choices=self.meter_choices())
        self.fields["meter"].help_text = ""
        self.fields["dimension"].help_text = ""

    def meter_choices(self):
        meters = in_catalog_order(Meter.objects.filter(category=self.data.get("category")))
        return [("", "All meters"), *((m.code, m.name) for m in meters)]

    def clean(self):
        cleaned = super().clean()
        preset = cleaned.get("period") or THIS_MONTH
        if preset != CUSTOM and not self.errors:
            dates = preset_range(preset, timezone.now().date())
            typed = (cleaned["start"], cleaned["end"])
            if self.dates_typed() and typed != (dates.start, dates.end):
                # Typed dates mean a custom range, whatever the preset still says;
                # the select then shows what the page shows.
                preset = self.data["period"] = CUSTOM
            else:
                cleaned["start"], cleaned["end"] = dates.start, dates.end
        cleaned["period"] = preset
        cleaned["stack"] = cleaned.get("stack") or "child"
        return cleaned

    def dates_typed(self) -> bool:
        return bool(self.data.get("start") or self.data.get("end"))

    @property
    def range_name(self) -> str:
        """What the period line calls the range shown: "this month", "custom range"."""
        return PRESET_NAMES[self.cleaned_data["period"]].lower()

    @property
    def report_period(self) -> DateRange:
        return DateRange(self.cleaned_data["start"], self.cleaned_data["end"])

    @property
    def category(self) -> str:
        return self.cleaned_data["category"]
