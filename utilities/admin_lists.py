"""Admin changelists over tables of millions of rows: what Django's would read in full.

- `CountAheadPaginator` counts a list no further than a few pages past the page
  shown: exact for a list that ends within that reach, "more than N" beyond it
  (Django counts every matching row to number the pages).
- `date_hierarchy_from_bounds` draws the date drill-down from the list's first and
  last date, offering every year, month or day between them (Django reads the
  distinct dates of every matching row).

Both cost about a page's worth of rows through an index, whatever the table holds.
"""

from datetime import date, datetime, timedelta

from django.contrib.admin.views.main import PAGE_VAR
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.text import capfirst
from django.utils.translation import gettext as _


class CountAheadPaginator(Paginator):
    """A paginator whose count stops `pages_ahead` pages past `page_number`.

    Past that reach `count` is the reach and `more` is True: the pages offered end
    there, and each page further on reaches further.
    """

    pages_ahead = 10

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True,
                 *, page_number: int = 1):  # fmt: skip
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        self.reach = (max(page_number, 1) + self.pages_ahead) * self.per_page
        self.more = False

    @cached_property
    def count(self):
        if not isinstance(self.object_list, QuerySet):
            return super().count
        counted = self.object_list.order_by()[: self.reach + 1].count()
        self.more = counted > self.reach
        return min(counted, self.reach)


def changelist_page(request) -> int:
    """The page number a changelist request asks for, read as Django's ChangeList reads it."""
    try:
        return int(request.GET.get(PAGE_VAR, 1))
    except ValueError:
        return 1


def first_and_last(queryset, field_name: str) -> tuple[date | None, date | None]:
    """The first and last date of `field_name` in the list: one row each through an
    index on the field (a MIN and MAX in one query read every row on SQLite)."""
    dated = queryset.exclude(**{f"{field_name}__isnull": True}).values_list(field_name, flat=True)
    first = dated.order_by(field_name).first()
    last = dated.order_by(f"-{field_name}").first()
    return as_local_date(first), as_local_date(last)


def as_local_date(value) -> date | None:
    if isinstance(value, datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return value


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def months_between(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = (month + timedelta(days=31)).replace(day=1)
    return months


def date_hierarchy_from_bounds(cl) -> dict:
    """The context of Django's `date_hierarchy` tag, from the list's first and last date.

    A year, month or day between them may hold no row: its link shows an empty list.
    """
    field_name = cl.date_hierarchy
    year_field, month_field, day_field = (f"{field_name}__{p}" for p in ("year", "month", "day"))
    year, month, day = (cl.params.get(name) for name in (year_field, month_field, day_field))

    def link(filters):
        return cl.get_query_string(filters, [f"{field_name}__"])

    if year and month and day:
        chosen = date(int(year), int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({year_field: year, month_field: month}),
                "title": capfirst(date_format(chosen, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(date_format(chosen, "MONTH_DAY_FORMAT"))}],
        }
    first, last = first_and_last(cl.queryset, field_name)
    if first is not None and not year and first.year == last.year:
        year = first.year
        if first.month == last.month:
            month = first.month
    if year and month:
        days = [] if first is None else days_between(first, last)
        return {
            "show": True,
            "back": {"link": link({year_field: year}), "title": str(year)},
            "choices": [
                {
                    "link": link({year_field: year, month_field: month, day_field: d.day}),
                    "title": capfirst(date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    if year:
        months = [] if first is None else months_between(first, last)
        return {
            "show": True,
            "back": {"link": link({}), "title": _("All dates")},
            "choices": [
                {
                    "link": link({year_field: year, month_field: m.month}),
                    "title": capfirst(date_format(m, "YEAR_MONTH_FORMAT")),
                }
                for m in months
            ],
        }
    years = [] if first is None else range(first.year, last.year + 1)
    return {
        "show": True,
        "back": None,
        "choices": [{"link": link({year_field: str(y)}), "title": str(y)} for y in years],
    }
