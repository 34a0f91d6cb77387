"""Month arithmetic, in the one module that does it."""

from datetime import date

import pytest

from billing.periods import (
    day_bit,
    day_of_bit,
    days_in_month,
    month_day_mask,
    month_end,
    month_of,
    next_month,
    parse_month,
    previous_month,
    requested_month,
    segment_of,
)
from billing.usage.aggregations import AGGREGATIONS
from metering.models import Meter


@pytest.mark.parametrize(
    "day, first, last, following, before",
    [
        (
            date(2024, 2, 29),
            date(2024, 2, 1),
            date(2024, 2, 29),
            date(2024, 3, 1),
            date(2024, 1, 1),
        ),
        (
            date(2025, 2, 10),
            date(2025, 2, 1),
            date(2025, 2, 28),
            date(2025, 3, 1),
            date(2025, 1, 1),
        ),
        (
            date(2026, 12, 31),
            date(2026, 12, 1),
            date(2026, 12, 31),
            date(2027, 1, 1),
            date(2026, 11, 1),
        ),
        (
            date(2027, 1, 1),
            date(2027, 1, 1),
            date(2027, 1, 31),
            date(2027, 2, 1),
            date(2026, 12, 1),
        ),
    ],
)
def test_month_boundaries(day, first, last, following, before):
    assert month_of(day) == first
    assert month_end(first) == last
    assert days_in_month(day) == last.day
    assert next_month(first) == following
    assert previous_month(day) == before


def test_a_requested_month_is_yyyy_mm_or_this_month():
    today = date(2026, 12, 3)
    assert requested_month(None, today) == requested_month("", today) == date(2026, 12, 1)
    assert requested_month("2026-02", today) == parse_month("2026-02") == date(2026, 2, 1)
    for bad in ("2026-13", "2026", "26-1-1", "december", "2026-00"):
        with pytest.raises(ValueError, match="use YYYY-MM"):
            requested_month(bad, today)


class Span:
    def __init__(self, starts_on, ends_on=None):
        self.starts_on, self.ends_on = starts_on, ends_on


def test_a_segment_is_the_subscriptions_days_inside_the_month():
    november = date(2026, 11, 1)
    assert segment_of(Span(date(2026, 1, 1)), november) == (november, date(2026, 11, 30))
    assert segment_of(Span(date(2026, 11, 15), date(2027, 1, 5)), november) == (
        date(2026, 11, 15),
        date(2026, 11, 30),
    )
    assert segment_of(Span(date(2026, 10, 1), date(2026, 11, 14)), november) == (
        november,
        date(2026, 11, 14),
    )


def test_day_masks_select_the_days_between_start_and_end():
    month = date(2026, 11, 1)
    mask = month_day_mask(month, date(2026, 11, 3), date(2026, 11, 5))
    assert mask == day_bit(date(2026, 11, 3)) | day_bit(date(2026, 11, 4)) | day_bit(
        date(2026, 11, 5)
    )
    assert [day_of_bit(month, 1 << n) for n in (2, 3, 4)] == [
        date(2026, 11, 3),
        date(2026, 11, 4),
        date(2026, 11, 5),
    ]
    # A range running past the month covers its remaining days.
    whole = month_day_mask(month, date(2026, 10, 20), date(2026, 12, 2))
    assert all(whole & day_bit(date(2026, 11, d)) for d in range(1, 31))


def test_every_aggregation_a_meter_may_have_has_one_rule():
    assert set(AGGREGATIONS) == set(Meter.Aggregation.values)
    for name, rule in AGGREGATIONS.items():
        # A day value comes from the shared pass or a SELECT of its own, never both.
        assert (rule.day_value is None) != (rule.day_sql is None), name
        assert (rule.tail_value is not None) == (rule.tail == "adds"), name
