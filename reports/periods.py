"""Report periods: the presets a finance user picks from, in UTC days.

Every period is a pair of inclusive UTC dates, the same convention as
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
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "Period":
        """The period of equal length that ends the day before this one starts."""
        end = self.start - timedelta(days=1)
        return Period(end - timedelta(days=self.days - 1), end)


def preset_period(preset: str, today: date) -> Period:
    """The dates of a preset as of `today` (a UTC date); this month runs to today."""
    if preset == LAST_MONTH:
        last_month = previous_month(today)
        return Period(last_month, month_end(last_month))
    if preset == LAST_30_DAYS:
        return Period(today - timedelta(days=29), today)
    return Period(month_of(today), today)
