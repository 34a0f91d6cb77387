"""Calendar arithmetic of billing: months, the days a subscription covers in one,
and the UTC instants that bound a run of days.

A billing period is a calendar month, named by its first day (Statement.period,
`?period=YYYY-MM`). Every month boundary in billing is computed here.
"""

from calendar import monthrange
from datetime import UTC, date, datetime, time, timedelta


def month_of(day: date) -> date:
    return day.replace(day=1)


def month_end(period: date) -> date:
    return period.replace(day=days_in_month(period))


def days_in_month(day: date) -> int:
    return monthrange(day.year, day.month)[1]


def next_month(period: date) -> date:
    return month_end(period) + timedelta(days=1)


def previous_month(period: date) -> date:
    return month_of(month_of(period) - timedelta(days=1))


def parse_month(value: str) -> date:
    """'YYYY-MM' -> the month's first day; ValueError with a readable message otherwise."""
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise ValueError(f"{value!r} is not a month; use YYYY-MM.") from None


def requested_month(value: str | None, today: date) -> date:
    """A request's `period` parameter: 'YYYY-MM', this month when absent.
    ValueError (see parse_month) when it is not a month."""
    return parse_month(value) if value else month_of(today)


def segment_of(subscription, period: date) -> tuple[date, date]:
    """The days of `period` that a subscription (starts_on, ends_on or None) covers."""
    end = month_end(period)
    return max(subscription.starts_on, period), min(subscription.ends_on or end, end)


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00 UTC, the day after last 00:00 UTC)."""
    start = datetime.combine(first, time.min, UTC)
    return start, datetime.combine(last + timedelta(days=1), time.min, UTC)


def month_day_mask(month: date, start: date, end: date) -> int:
    """The bits (bit 0 = the 1st) of the days of `month` between start and end."""
    first = start.day if month_of(start) == month else 1
    last = end.day if month_of(end) == month else 31
    return ((1 << last) - 1) & ~((1 << (first - 1)) - 1)


def day_bit(day: date) -> int:
    """The day's bit in its month's mask (see month_day_mask)."""
    return 1 << (day.day - 1)


def day_of_bit(month: date, bit: int) -> date:
    """The day of `month` whose bit (one set bit) this is: day_bit's inverse."""
    return month.replace(day=bit.bit_length())
