"""The report's rules as plain functions: periods, change, plan bars, top consumers."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

from django.template.loader import render_to_string
from django.utils.html import strip_tags

from accounts.models import Tenant
from metering.models import Meter
from reports.date_ranges import LAST_30_DAYS, LAST_MONTH, THIS_MONTH, DateRange, preset_range
from reports.selectors import (
    Charge,
    ChildUsage,
    MeterCard,
    PlanAllowance,
    plan_bar,
    top_consumers,
)
from reports.tables import ChildUsageTable


def test_presets_are_utc_days_ending_today():
    today = date(2026, 3, 15)
    assert preset_range(THIS_MONTH, today) == DateRange(date(2026, 3, 1), today)
    assert preset_range(LAST_MONTH, today) == DateRange(date(2026, 2, 1), date(2026, 2, 28))
    assert preset_range(LAST_30_DAYS, today) == DateRange(date(2026, 2, 14), today)
    assert preset_range(LAST_MONTH, date(2026, 1, 3)) == DateRange(
        date(2025, 12, 1), date(2025, 12, 31)
    )


def test_previous_period_has_equal_length_and_ends_the_day_before():
    period = DateRange(date(2026, 3, 1), date(2026, 3, 15))
    assert period.previous() == DateRange(date(2026, 2, 14), date(2026, 2, 28))
    assert period.previous().days == period.days == 15


def card(quantity, previous) -> MeterCard:
    return MeterCard(Meter(code="m", name="M", unit="count"), Decimal(quantity), Decimal(previous))


def test_change_against_previous_period():
    assert card("150", "100").change_percent == Decimal("50.0")
    assert card("150", "100").direction == "up"
    assert card("1", "3").change_percent == Decimal("-66.7")
    assert card("1", "3").direction == "down"
    assert card("5", "5").direction == ""


def test_change_is_none_when_previous_period_is_zero():
    assert card("10", "0").change_percent is None
    assert card("10", "0").direction == ""


def test_plan_bar_against_included_colored_at_thresholds():
    allowance = PlanAllowance(included=Decimal(1000), thresholds=(80, 100))
    assert plan_bar(Decimal(500), allowance).level == "ok"
    warn = plan_bar(Decimal(850), allowance)
    assert (warn.level, warn.crossed, warn.used_percent) == ("warn", (80,), Decimal("85.0"))
    over = plan_bar(Decimal(1200), allowance)
    assert (over.level, over.crossed, over.used_percent) == ("over", (80, 100), Decimal(100))


def test_plan_bar_with_limit_measures_against_the_limit_and_marks_included():
    allowance = PlanAllowance(included=Decimal(1000), limit=Decimal(1500), thresholds=(90,))
    bar = plan_bar(Decimal(1200), allowance)
    assert bar.used_percent == Decimal("80.0")
    assert bar.included_percent == Decimal("66.7")
    assert bar.level == "ok"  # past included, but under the 90 % alert of the limit


def test_meter_card_template_draws_the_plan_bar_only_with_a_plan():
    meter = Meter(code="call_minutes", name="Call minutes", unit="minutes")
    plain = MeterCard(meter, Decimal("900"), Decimal("0"))
    assert "plan-bar" not in render_to_string("reports/includes/meter_card.html", {"card": plain})
    planned = MeterCard(
        meter, Decimal("900"), Decimal("0"), [PlanAllowance(Decimal(1000), None, (80, 100))]
    )
    html = render_to_string("reports/includes/meter_card.html", {"card": planned})
    assert 'class="plan-bar warn"' in html and "width: 90.0%" in html
    assert "Included 1,000;" in strip_tags(html) and "80% crossed" in html


def test_an_item_with_nothing_included_and_no_limit_has_no_bar():
    priced_only = PlanAllowance(included=Decimal(0), thresholds=(80, 100))
    assert not priced_only.has_allowance and plan_bar(Decimal(500), priced_only) is None
    capped = PlanAllowance(included=Decimal(0), limit=Decimal(1000))
    assert capped.has_allowance and plan_bar(Decimal(500), capped).level == "ok"


def test_meter_card_shows_the_charge_of_an_item_without_allowance_instead_of_a_bar():
    meter = Meter(code="call_minutes", name="Call minutes", unit="minutes")
    charge = Charge(Decimal("3.25"), "USD", date(2026, 11, 1))
    card = MeterCard(
        meter, Decimal("16.25"), Decimal("0"), [PlanAllowance(Decimal(0), charge=charge)]
    )
    html = render_to_string("reports/includes/meter_card.html", {"card": card})
    assert "plan-bar" not in html and "Included" not in html
    assert "Charges so far, Nov 2026 statement: 3.25 USD" in strip_tags(html)
    final = replace(charge, amount=Decimal("1200"), currency="JPY", final=True)
    card.allowances = [PlanAllowance(Decimal(0), charge=final)]
    html = render_to_string("reports/includes/meter_card.html", {"card": card})
    assert "Charges, Nov 2026 statement: 1,200 JPY" in strip_tags(html)
    # No statement line yet: nothing but the total.
    card.allowances = [PlanAllowance(Decimal(0))]
    html = render_to_string("reports/includes/meter_card.html", {"card": card})
    assert "plan-bar" not in html and "Charges" not in html


def test_top_consumers_rank_children_and_skip_idle_and_own_usage():
    meter = Meter(code="m", name="M", unit="count")
    children = [
        ChildUsage(Tenant(name=f"C{n}", slug=f"c{n}", kind="agent"), {"m": Decimal(n)})
        for n in range(15)
    ]
    children.append(ChildUsage(Tenant(name="Own", slug="own"), {"m": Decimal(99)}, own=True))
    top = top_consumers(children, meter, Decimal(200))
    assert [c.tenant.name for c in top] == [f"C{n}" for n in range(14, 4, -1)]
    assert top[0].share == Decimal("7.0")


def test_children_table_adds_charges_column_only_when_rows_have_charges():
    meter = Meter(code="m", name="M", unit="count")
    row = ChildUsage(Tenant(name="Org", slug="org", kind="organization"), {"m": Decimal(1)})
    assert "charges" not in ChildUsageTable([row], meters=[meter]).columns.names()
    row.charges = Charge(Decimal("12.5"), "USD", date(2026, 11, 1))
    table = ChildUsageTable([row], meters=[meter])
    # The currency is a column of the CSV only; the page shows it in each cell.
    assert list(table.columns.names()) == ["name", "kind", "m_m", "charges", "charges_currency"]
    assert [c.name for c in table.columns] == ["name", "kind", "m_m", "charges"]
    assert table.columns["charges"].header == "Charges, Nov 2026 statement"
    assert table.rows[0].get_cell("charges") == "12.50 USD"
    assert [table.rows[0].get_cell_value(c) for c in ("charges", "charges_currency")] == [
        "12.50",
        "USD",
    ]
    more = ChildUsage(Tenant(name="Big", slug="big", kind="organization"), {"m": Decimal(1)})
    more.charges = Charge(Decimal("300"), "USD", date(2026, 11, 1))
    idle = ChildUsage(Tenant(name="Idle", slug="idle", kind="organization"), {"m": Decimal(0)})
    by_charges = ChildUsageTable([row, more, idle], meters=[meter], order_by="-charges")
    assert [r.record.name for r in by_charges.rows] == ["Big", "Org", "Idle"]


def test_focus_meter_prefers_the_asked_meter_then_used_meters_distinct_counts_last():
    from billing.usage import UsageFilters
    from reports.selectors import focus_meter

    users = MeterCard(
        Meter(code="active_users", aggregation="unique_count"), Decimal(5), Decimal(0)
    )
    licenses = MeterCard(Meter(code="licenses", aggregation="max"), Decimal(2), Decimal(0))
    idle = MeterCard(Meter(code="portals", aggregation="max"), Decimal(0), Decimal(0))
    assert focus_meter([users, licenses, idle], UsageFilters()).code == "licenses"
    assert focus_meter([users, idle], UsageFilters()).code == "active_users"
    asked = UsageFilters(meters=("portals",))
    assert focus_meter([users, licenses, idle], asked).code == "portals"
    assert focus_meter([], UsageFilters()) is None


def test_children_usage_pivots_meters_and_drops_an_empty_own_row():
    from billing.usage import UsageRow, UsageSummary
    from reports.selectors import children_usage

    parent = Tenant(pk=1, name="Org", slug="org", kind="organization")
    agent = Tenant(pk=2, name="Agent", slug="agent", kind="agent")
    calls = Meter(pk=1, code="calls")
    mails = Meter(pk=2, code="mails")
    rows = [
        UsageRow(calls, Decimal(3), 1, agent),
        UsageRow(calls, Decimal(0), 1, parent),
        UsageRow(mails, Decimal(0), 0, parent),
    ]
    summary = UsageSummary(parent, date(2026, 1, 1), date(2026, 1, 31), "child", rows,
                           as_of=None, meters=[calls, mails])  # fmt: skip
    children = children_usage(summary)
    assert [(c.name, c.quantities) for c in children] == [
        ("Agent", {"calls": Decimal(3), "mails": Decimal(0)})
    ]
    rows.append(UsageRow(mails, Decimal(2), 2, parent))
    assert [c.name for c in children_usage(summary)] == ["Agent", "Org (own usage)"]
