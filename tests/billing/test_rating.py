"""Rating arithmetic: allowances, tier boundaries, proration and rounding, by hand."""

from datetime import date
from decimal import Decimal as D

import pytest

from billing.models import PlanItem
from billing.money import round_money
from billing.rating import prorated_fee, rate_item

TIERS = [
    {"up_to": "100", "unit_price": "0.10"},
    {"up_to": "500", "unit_price": "0.08"},
    {"up_to": None, "unit_price": "0.05"},
]


def item(**fields):
    defaults = {"included_quantity": D("1000"), "unit_price": D("0"), "tiers": []}
    return PlanItem(**{**defaults, **fields})


@pytest.mark.parametrize(
    ("used", "overage", "amount"),
    [
        ("0", "0", "0.00"),
        ("999.999999", "0", "0.00"),
        ("1000", "0", "0.00"),  # exactly the included quantity: free
        ("1000.000001", "0.000001", "0.00"),
        ("1001", "1", "0.10"),
        ("1100", "100", "10.00"),  # the first tier's bound
        ("1101", "101", "10.08"),  # one unit into the second tier
        ("1500", "500", "42.00"),  # 100 × 0.10 + 400 × 0.08
        ("1501", "501", "42.05"),  # the open tier starts
        ("3500", "2500", "142.00"),  # 42 + 2000 × 0.05
    ],
)
def test_graduated_tiers_at_and_across_every_boundary(used, overage, amount):
    rated = rate_item(item(tiers=TIERS), D(used), "USD")
    assert rated.overage == D(overage)
    assert rated.amount == D(amount)
    assert rated.unit_price is None


def test_unit_price_without_tiers_prices_the_overage():
    rated = rate_item(item(unit_price=D("0.05")), D("1500"), "USD")
    assert (rated.included, rated.overage, rated.amount) == (D("1000"), D("500"), D("25.00"))


def test_zero_usage_and_no_allowance():
    rated = rate_item(item(included_quantity=D("0"), unit_price=D("2")), D("0"), "USD")
    assert rated.amount == D("0.00")


def test_graduated_amount_is_additive_over_tiers():
    # Graduated (not volume) pricing: a unit's price depends only on its own tier.
    rated = rate_item(item(included_quantity=D("0"), tiers=TIERS), D("600"), "USD")
    assert rated.amount == D("100") * D("0.10") + D("400") * D("0.08") + D("100") * D("0.05")


@pytest.mark.parametrize(
    ("currency", "raw", "rounded"),
    [
        ("USD", "0.005", "0.01"),  # half-up, not banker's rounding
        ("USD", "0.015", "0.02"),
        ("USD", "0.0049", "0.00"),
        ("EUR", "2.675", "2.68"),
        ("JPY", "12.5", "13"),  # no minor unit
        ("JPY", "12.4", "12"),
        ("KWD", "1.0005", "1.001"),  # three places
        ("BHD", "0.0004", "0.000"),
    ],
)
def test_rounding_half_up_to_the_currencys_minor_unit(currency, raw, rounded):
    assert str(round_money(D(raw), currency)) == rounded


def test_line_is_rounded_once_not_per_tier():
    # 3 × 0.333 + 3 × 0.333 = 1.998 → 2.00 once; rounding per tier would give 1.00 + 1.00.
    tiers = [{"up_to": "3", "unit_price": "0.333"}, {"up_to": None, "unit_price": "0.333"}]
    rated = rate_item(item(included_quantity=D("0"), tiers=tiers), D("6"), "USD")
    assert rated.amount == D("2.00")


@pytest.mark.parametrize(
    ("start", "end", "fee"),
    [
        (date(2026, 2, 1), date(2026, 2, 28), "100.00"),  # a whole 28-day month
        (date(2026, 2, 15), date(2026, 2, 28), "50.00"),  # 14 of 28 days
        (date(2026, 4, 1), date(2026, 4, 10), "33.33"),  # 10 of 30 days
        (date(2026, 4, 16), date(2026, 4, 30), "50.00"),  # 15 of 30
        (date(2026, 1, 1), date(2026, 1, 31), "100.00"),  # 31 days
        (date(2026, 1, 1), date(2026, 1, 15), "48.39"),  # 15 of 31 = 48.387…
        (date(2026, 1, 17), date(2026, 1, 31), "48.39"),
        (date(2028, 2, 1), date(2028, 2, 10), "34.48"),  # 10 of 29 (leap year) = 34.482…
    ],
)
def test_base_fee_prorated_by_day(start, end, fee):
    assert prorated_fee(D("100"), start, end, "USD") == D(fee)


def test_proration_in_yen_rounds_to_whole_units():
    assert prorated_fee(D("1000"), date(2026, 4, 1), date(2026, 4, 10), "JPY") == D("333")
