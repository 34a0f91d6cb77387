"""The usage question as a form: shared by the usage API and the report pages."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from billing.usage import GROUP_BYS, UsageFilters
from metering.models import Meter, UsageEvent
from usage_portal.api.inputs import validate_supported_date

MAX_RANGE_DAYS = 400


def this_month_so_far():
    today = timezone.now().date()
    return today.replace(day=1), today


class UsageQueryForm(forms.Form):
    tenant = forms.CharField(help_text="Tenant slug; the summary covers its subtree.")
    start = forms.DateField(
        required=False,
        help_text="First day (UTC); default: 1st of month.",
        validators=[validate_supported_date],
    )
    end = forms.DateField(
        required=False,
        help_text="Last day, inclusive; default: today.",
        validators=[validate_supported_date],
    )
    group_by = forms.ChoiceField(
        choices=[(g, g) for g in GROUP_BYS], required=False, initial="meter"
    )
    meter = forms.CharField(required=False, help_text="Meter code(s), comma-separated.")
    category = forms.ChoiceField(choices=[("", "Any"), *Meter.Category.choices], required=False)
    source = forms.ChoiceField(choices=[("", "Any"), *UsageEvent.Source.choices], required=False)
    dimension = forms.CharField(required=False, help_text="Only this dimension value.")

    def clean_meter(self):
        codes = tuple(c.strip() for c in self.cleaned_data["meter"].split(",") if c.strip())
        unknown = sorted(
            set(codes) - set(Meter.objects.filter(code__in=codes).values_list("code", flat=True))
        )
        if unknown:
            raise forms.ValidationError(f"Unknown meter(s): {', '.join(unknown)}.")
        return codes

    def clean(self):
        cleaned = super().clean()
        default_start, default_end = this_month_so_far()
        start = cleaned.get("start") or default_start
        end = cleaned.get("end") or max(default_end, start)
        if "start" in self.errors or "end" in self.errors:
            return cleaned
        if start > end:
            self.add_error("end", "The end date is before the start date.")
        elif end - start > timedelta(days=MAX_RANGE_DAYS):
            self.add_error("end", f"Ask for at most {MAX_RANGE_DAYS} days at a time.")
        cleaned["start"], cleaned["end"] = start, end
        cleaned["group_by"] = cleaned.get("group_by") or "meter"
        return cleaned

    def filters(self) -> UsageFilters:
        data = self.cleaned_data
        dimension = self.data.get("dimension")
        return UsageFilters(
            meters=data["meter"],
            category=data["category"],
            source=data["source"],
            dimension=dimension if dimension not in (None, "") else None,
        )
