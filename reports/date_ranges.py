"""Report date ranges: the presets a finance user picks from ("period" on the
page), in UTC days. Billing's period is a calendar month (billing.periods);
a report's is any range of days.

Every range is a pair of inclusive UTC dates, the same convention as
`usage_summary` and the usage API, so a page and an API call over the same
dates show the same numbers.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from billing.periods import month_end, month_of, previous_month

THIS_MONTH = "this_month"
LAST_MONTH = "last_month"
LAST_30_DAYS = "last_30_days"
CUSTOM = "custom"

PRESETS = [
    (THIS_MONTH, "This month"),
    (LAST_MONTH, "Last month"),
    (LAST_30_DAYS, "Last 30 days"),
    (CUSTOM, "Custom range"),
]


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "DateRange":
        """The period of equal length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        return DateRange(end - timedelta(days=self.days - 1), end)


def preset_range(preset: str, today: date) -> DateRange:
    """The dates of a preset as of `today` (a UTC date); this month runs to today."""
    if preset == LAST_MONTH:
        last_month = previous_month(today)
        return DateRange(last_month, month_end(last_month))
    if preset == LAST_30_DAYS:
        return DateRange(today - timedelta(days=29), today)
    return DateRange(month_of(today), today)
